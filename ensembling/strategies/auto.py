from __future__ import annotations

import dataclasses
import math

from ensembling.candidates import Validation
from ensembling.errors import EnsemblingError
from ensembling.strategies import NO_TRANSFER, Decision, get_strategy, register
from ensembling.strategies.base import Composition, Family, Needs, Strategy, Trial, Weighted, Weighting

# The inits auto weighs against the default init: the two scoring strategies that led the
# standard benchmark at 4 shots (README), and the two peers. Each costs its own scoring or
# fitting plus one training per fold.
CANDIDATES = ("el2n", "loss", "retrieval", "lorahub")


@register
class Auto(Strategy):
    """Transfer that should not hurt: the k-shot data decides between composed inits and the default init.

    Cross-validates the init of each strategy in CANDIDATES and the default init on the target's own
    data, in two folds: fit on the train split and scored on dev, then the reverse (a target without
    dev: its train split halved per label). In each fold every candidate init is built again from the
    fold's fitting part alone (scored, or for lorahub fitted, on it), then tuned on that part under the
    target's training budget (`reference_steps`) and scored on the held-out part, which it has never
    seen. (retrieval's source similarities come from the whole train split's text, computed once.) It
    keeps the strategy with the best mean held-out accuracy, lower mean loss breaking ties; the default
    init wins exact ties, so a composed init is kept only when the data says it does better. The init
    kept is that strategy's on all of the k-shot data (reusing the one another run built on the same
    target, as the benchmark's shared memo holds). A candidate that cannot run on this target (lorahub
    with one source, retrieval without embeddings) is left out and named in the reason.

    With nothing to hold out (no dev split and a label with a single train example, e.g. k = 1),
    nothing can be validated: auto then keeps the first candidate that runs, unvalidated, and says so.
    """

    name = "auto"
    summary = f"cross-validates {', '.join(CANDIDATES)} and the default init on the k-shot data; keeps the best by accuracy, then loss (the default init on an exact tie)"
    family = Family.AUTO
    composition = Composition.CHOSEN
    needs = frozenset({Needs.SCORING, Needs.TRAIN, Needs.SIMILARITY})
    optional_needs = frozenset({Needs.DEV})  # its folds are train and dev when there is a dev split, else the train split halved

    def weigh(self, context, candidates, weighting, progress=None):
        evaluator = context.need_evaluator(self.name)
        folds = evaluator.cross_validation_folds()
        if folds == 0:
            return self._unvalidated(context, candidates, weighting, progress)
        default = (Weighted([], [], []), Composition.DEFAULT_INIT)
        results: dict[str, list[Validation]] = {NO_TRANSFER: []}
        refused: dict[str, str] = {}
        steps = 0
        for index in range(folds):
            # Each candidate init is built anew from the fold's training part alone: an init scored or
            # fitted on the examples it is then judged on would be judged on its own training data.
            view = dataclasses.replace(context, evaluator=evaluator.fold(index), memo={}, state={})
            inits = {NO_TRANSFER: default}
            for name in CANDIDATES:
                if name in refused:
                    continue
                try:
                    inits[name] = _built(name, view, candidates, weighting, progress)
                except EnsemblingError as error:
                    refused[name] = str(error)
                    results.pop(name, None)
            for name, (weighted, composition) in inits.items():
                init = weighted.tensors(composition, evaluator.default_tensors, context.operator, context.seed)
                validation = evaluator.validate(index, init, context.reference_steps, context.seed)
                results.setdefault(name, []).append(validation)
                steps += weighted.tuning_steps + validation.steps
        trials = [
            Trial(name, math.fsum(v.accuracy for v in values) / len(values), math.fsum(v.loss for v in values) / len(values))
            for name, values in results.items()
        ]
        # The default init is first: max keeps the first of equals, so it wins a tie.
        best = max(trials, key=lambda trial: (trial.accuracy, -trial.loss))
        others = ", ".join(f"{trial.strategy} {trial.accuracy:.3f}" for trial in trials[1:] if trial is not best)
        if best is trials[0]:
            reason = f"kept the default init: cross-validated accuracy {best.accuracy:.3f}, no composed init did better ({others})"
        else:
            reason = f"chose {best.strategy}: cross-validated accuracy {best.accuracy:.3f} vs {trials[0].accuracy:.3f} for the default init ({others})"
        reason += f"; {folds} folds, each init rebuilt without the held-out part"
        if refused:
            reason += f"; left out {'; '.join(f'{name} ({error})' for name, error in refused.items())}"
        if best is trials[0]:
            weighted, composition = default
        else:
            # The init kept is the chosen strategy's on all of the k-shot data (another run's, when the memo has it).
            weighted, composition = _built(best.strategy, context, candidates, weighting, progress)
        return self._remember(context, weighted.decided(Decision(best.strategy, composition, reason, tuple(trials)), steps))

    def _unvalidated(self, context, candidates, weighting, progress) -> Weighted:
        """No fold to hold out: the first candidate that runs, said to be unvalidated; the default init if none does."""
        refused = []
        for name in CANDIDATES:
            try:
                weighted, composition = _built(name, context, candidates, weighting, progress)
            except EnsemblingError as error:
                refused.append(f"{name} ({error})")
                continue
            reason = (
                f"nothing to cross-validate on (no dev split, and a label with one train example): kept {name} unvalidated; "
                "add dev examples (or 2 train examples per label) to let auto check it against the default init"
            )
            return self._remember(context, weighted.decided(Decision(name, composition, reason), 0))
        reason = f"every candidate init was refused: {'; '.join(refused)}; kept the default init"
        return self._remember(context, Weighted([], [], [], decision=Decision(NO_TRANSFER, Composition.DEFAULT_INIT, reason)))


def _built(name: str, context, candidates, weighting, progress) -> tuple[Weighted, Composition]:
    """Strategy `name`'s init on this context's data: the memo's when another run built it on the same data."""
    strategy = get_strategy(name)
    if name in context.memo:
        return context.memo[name], strategy.composition
    # Each candidate weights with its own temperature; top-k applies to the scored ones only.
    top_k = weighting.top_k if strategy.composition is Composition.SCORED else None
    return strategy.weigh(context, candidates, Weighting(strategy.temperature, strategy.znorm, top_k), progress), strategy.composition
