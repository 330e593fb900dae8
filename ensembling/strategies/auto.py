from __future__ import annotations

import math

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

    Builds the init of each strategy in CANDIDATES (reusing one another run already found on the
    same target, as the benchmark's shared memo holds), then cross-validates each of them and the
    default init on the target's own data: tuned on the train split and scored on dev, then the
    reverse (a target without dev: its train split halved per label), under the target's training
    budget (`reference_steps`). It keeps the init with the best mean held-out accuracy, lower mean
    loss breaking ties; the default init wins exact ties, so a composed init is kept only when the
    data says it does better. A candidate that cannot run on this target (lorahub with one source,
    retrieval without embeddings) is left out and named in the reason.

    With nothing to hold out (no dev split and a label with a single train example, e.g. k = 1),
    nothing can be validated: auto then keeps the first candidate that runs, unvalidated, and says so.
    """

    name = "auto"
    summary = f"cross-validates {', '.join(CANDIDATES)} and the default init on the k-shot data; keeps the best (the default init on ties)"
    family = Family.AUTO
    composition = Composition.CHOSEN
    needs = frozenset({Needs.SCORING, Needs.TRAIN, Needs.SIMILARITY})

    def weigh(self, context, candidates, weighting, progress=None):
        evaluator = context.need_evaluator(self.name)
        inits: dict[str, tuple[Weighted, Composition]] = {}
        refused: list[str] = []
        validating = evaluator.cross_validation_folds() > 0
        for name in CANDIDATES:
            strategy = get_strategy(name)
            if name in context.memo:
                inits[name] = (context.memo[name], strategy.composition)
            else:
                # Each candidate weights with its own temperature; top-k applies to the scored ones only.
                top_k = weighting.top_k if strategy.composition is Composition.SCORED else None
                try:
                    inits[name] = (strategy.weigh(context, candidates, Weighting(strategy.temperature, strategy.znorm, top_k), progress), strategy.composition)
                except EnsemblingError as error:
                    refused.append(f"{name} ({error})")
                    continue
            if not validating:
                break
        if not inits:
            reason = f"every candidate init was refused: {'; '.join(refused)}; kept the default init"
            return self._remember(context, Weighted([], [], [], decision=Decision(NO_TRANSFER, Composition.DEFAULT_INIT, reason)))
        if not validating:
            name, (weighted, composition) = next(iter(inits.items()))
            reason = (
                f"nothing to cross-validate on (no dev split, and a label with one train example): kept {name} unvalidated; "
                "add dev examples (or 2 train examples per label) to let auto check it against the default init"
            )
            return self._remember(context, _decided(weighted, Decision(name, composition, reason), 0))

        trials, steps = [], 0
        default = (Weighted([], [], []), Composition.DEFAULT_INIT)
        # The default init first: max keeps the first of equals, so it wins a tie.
        for name, (weighted, composition) in {NO_TRANSFER: default, **inits}.items():
            folds = evaluator.cross_validate(weighted.tensors(composition, evaluator.default_tensors), context.reference_steps, context.seed)
            steps += sum(fold.steps for fold in folds)
            trials.append(Trial(name, math.fsum(fold.accuracy for fold in folds) / len(folds), math.fsum(fold.loss for fold in folds) / len(folds)))
        best = max(trials, key=lambda trial: (trial.accuracy, -trial.loss))
        others = ", ".join(f"{trial.strategy} {trial.accuracy:.3f}" for trial in trials[1:] if trial is not best)
        if best is trials[0]:
            reason = f"kept the default init: cross-validated accuracy {best.accuracy:.3f}, no composed init did better ({others})"
        else:
            reason = f"chose {best.strategy}: cross-validated accuracy {best.accuracy:.3f} vs {trials[0].accuracy:.3f} for the default init ({others})"
        reason += f"; {len(folds)} folds"
        if refused:
            reason += f"; left out {'; '.join(refused)}"
        weighted, composition = default if best is trials[0] else inits[best.strategy]
        return self._remember(context, _decided(weighted, Decision(best.strategy, composition, reason, tuple(trials)), steps))


def _decided(weighted: Weighted, decision: Decision, steps: int) -> Weighted:
    return Weighted(weighted.sources, weighted.scores, weighted.weights, weighted.tuning_steps + steps, decision)
