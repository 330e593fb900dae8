"""Scoring speed: live-model candidate switching vs the naive loop (see issue 3, "Speed").

    python benchmarks/scoring.py                       # 16, 64, 256 candidates; loss and el2n
    python benchmarks/scoring.py --sizes 16 64 --naive-limit 64
    python benchmarks/scoring.py --sizes 16 --batched 8    # also predict_many, 8 candidates a forward

Candidates are synthetic LoRA modules (r=10, α=16, the paper's LoRA) of the packaged
MiniLM: random tensors of the right schema (std 0.05) registered with `Hub.register`,
so no 256 modules need training. The target is 64 dev examples of wn-isa-animal
(2 candidates each: 128 sequences).

live   what `adapters ensemble` does: the base model is loaded and the method attached
       once (`hub.evaluation.ModelEvaluator`); per candidate its blob is read (digest
       verified) and copied into the live parameters (`method.set_tensors`); the target
       examples are tokenized once, sorted by length into batches (8 on CPU), and run under
       `torch.inference_mode()`. Timed per strategy, each strategy its own full pass.
naive  what one would write first: per candidate a freshly loaded base model
       (`AutoModelForSequenceClassification.from_pretrained`) and
       `PeftModel.from_pretrained(base, exported_folder)`, then one forward per example
       (its candidates in one small batch), no `no_grad`, no batching across examples.
       One naive pass yields both loss and el2n, so the naive time is charged once and
       compared with each live strategy's time (favouring naive).
naive-batched (--naive-batched) the same fresh loading, but the examples run in
       the formulation's batches of 32 in file order under `no_grad`: separates what
       switching saves from what batching and length-sorting save.
vmap   (--batched G) the live path with every candidate's tensors read first and scored
       by `ModelEvaluator.predict_many(candidates, group_size=G)`: G candidates in one
       vmapped forward per scoring batch; the strategy then reads the cached rows.
       Printed beside the live path as candidates/s, with its largest score difference.

--device runs the live, vmap and naive paths on that device (cpu, cuda or auto).

Scores from both paths must agree to 1e-5. First it prints, per registered method, whether switching
candidates is the fast path (an in-place copy into every trained parameter). With --naive-limit K < N, the naive loop is
timed on the first K candidates and its time extrapolated linearly (marked "~"): its
per-candidate cost does not depend on N.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ensembling.candidates import Candidate, Rows, Target  # noqa: E402
from ensembling.strategies import STRATEGIES, Context, Family, Needs, get_strategy, of_family  # noqa: E402
from hub import Hub, load_dataset  # noqa: E402
from hub.backbones import formulation_for  # noqa: E402
from hub.evaluation import ModelEvaluator  # noqa: E402
from hub.trainable import TrainableModule  # noqa: E402
from hub.training import resolve_device, seed_everything  # noqa: E402
from store.records import ModuleRecord  # noqa: E402

SUITE = ROOT / "suites" / "wordnet"
# The strategies that score from the sources' predictions alone (what both paths compute).
SCORERS = [name for name in of_family(Family.PAPER) if STRATEGIES[name].needs == {Needs.SCORING} and not STRATEGIES[name].reads_gradients]


class GivenRows:
    """The part of an evaluator a prediction-only strategy reads, holding rows computed elsewhere (the naive loop)."""

    def __init__(self, rows: Rows) -> None:
        self._rows = rows

    def predict(self, candidate: Candidate) -> Rows:
        return self._rows


def score_with(strategy: str, rows: Rows) -> float:
    chosen = get_strategy(strategy)
    return chosen.score(Context(Target("target", "x"), GivenRows(rows)), Candidate(0, "source", "x", "0" * 64, {})).score


def synthetic_registry(hub: Hub, count: int, seed: int = 0) -> tuple[list[ModuleRecord], TrainableModule]:
    module = hub.new_module("minilm", "lora")
    source = load_dataset(SUITE / "wn-supersense-noun-a")
    generator = torch.Generator().manual_seed(seed)
    records = []
    for _ in range(count):
        tensors = {name: torch.randn(t.shape, generator=generator) * 0.05 for name, t in module.tensors().items()}
        records.append(hub.register(module.method, module.config, tensors, source, module.backbone))
    return records, module


def live_scores(
    hub: Hub, records: list[ModuleRecord], module: TrainableModule, examples, strategy: str, device: torch.device, group_size: int | None = None
) -> tuple[float, list[float]]:
    """Seconds and scores of the live path; with `group_size`, the candidates are scored by `predict_many` first."""
    started = time.perf_counter()
    seed_everything(0)
    evaluator = ModelEvaluator(module.backbone.attach(module.method, module.config), module.method, module.formulation, examples, device=device)
    candidates: Iterable[Candidate] = (Candidate(r.id, r.task, r.category, r.blob_digest, hub.load_tensors(r), r.base_model) for r in records)
    context = Context(Target("target", "x"), evaluator)
    chosen = get_strategy(strategy)
    chosen.prepare(context)
    if group_size is not None:
        # a group needs all its candidates' tensors at once; the strategy below then reads the cached rows
        candidates = list(candidates)
        evaluator.predict_many(candidates, group_size)
    scores = []
    for candidate in candidates:  # without a group, one at a time: a candidate's tensors are read just before use
        scores.append(chosen.score(context, candidate).score)
    return time.perf_counter() - started, scores


def naive_scores(folders: list[Path], ref, examples, batched: bool, device: torch.device) -> tuple[float, dict[str, list[float]]]:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    formulation = formulation_for(ref)
    started = time.perf_counter()
    results: dict[str, list[float]] = {name: [] for name in SCORERS}
    for folder in folders:
        base = AutoModelForSequenceClassification.from_pretrained(ref.path, num_labels=1, local_files_only=True)
        model = PeftModel.from_pretrained(base, str(folder)).to(device)
        model.eval()
        rows, golds = [], []
        if batched:
            with torch.no_grad():
                for batch in formulation.batches(list(examples), 32):
                    predictions = formulation.predictions(model, batch.to(device))
                    rows.extend(predictions.log_probs.cpu())
                    golds.extend(predictions.gold.cpu())
        else:
            for example in examples:
                predictions = formulation.predictions(model, formulation.collate([example]).to(device))
                rows.append(predictions.log_probs[0].detach().cpu())
                golds.append(predictions.gold[0].cpu())
        width = max(row.shape[0] for row in rows)
        log_probs = torch.stack([torch.cat([row, row.new_full((width - row.shape[0],), float("-inf"))]) for row in rows])
        gold = torch.stack(golds)
        for name in SCORERS:
            results[name].append(score_with(name, Rows(log_probs, gold)))
    return time.perf_counter() - started, results


def fast_path_lines(hub: Hub) -> list[str]:
    """Per registered method on MiniLM: does switching a candidate copy into the live parameters (no reload)?"""
    from hub.methods import METHODS

    lines = []
    for name, method in METHODS.items():
        module = hub.new_module("minilm", name)
        live = method.live_parameters(module.model)
        trained = {id(parameter) for parameter in module.model.parameters() if parameter.requires_grad}
        storage = [parameter.data_ptr() for parameter in live.values()]
        method.set_tensors(module.model, {key: tensor + 0.01 for key, tensor in module.tensors().items()})
        applied = {id(parameter) for parameter in live.values()} == trained and [parameter.data_ptr() for parameter in live.values()] == storage
        lines.append(f"fast path {name:<8} {'applies' if applied else 'DOES NOT APPLY'} ({len(live)} tensors copied in place)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--strategies", nargs="+", default=SCORERS, choices=SCORERS)
    parser.add_argument("--naive-limit", type=int, default=None, help="time the naive loop on at most this many candidates per size")
    parser.add_argument("--naive-batched", action="store_true", help="also time the naive loop with batched, no_grad forwards")
    parser.add_argument("--batched", type=int, default=None, metavar="G", help="also time predict_many scoring G candidates a forward")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    target = load_dataset(SUITE / "wn-isa-animal")
    examples = list(target.split("dev")[: args.examples])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}; target wn-isa-animal, {len(examples)} examples")
    with tempfile.TemporaryDirectory() as scratch, Hub(Path(scratch) / "registry") as hub:
        started = time.perf_counter()
        records, module = synthetic_registry(hub, max(args.sizes))
        print("\n".join(fast_path_lines(hub)))
        print(f"registered {len(records)} synthetic LoRA candidates ({records[0].num_params:,} parameters each) in {time.perf_counter() - started:.1f}s")
        folders = []
        for record in records[: max(min(size, args.naive_limit or size) for size in args.sizes)]:
            folders.append(hub.export(record.id, Path(scratch) / "folders" / str(record.id)))
        lines = []
        header = f"{'N':>4} {'strategy':<8} {'live s':>8} {'s/cand':>7} {'naive s':>9} {'s/cand':>7} {'ratio':>6}"
        header += f" {'batched s':>10} {'ratio':>6}" if args.naive_batched else ""
        header += f" {'max |Δ|':>9}"
        header += f" {'live c/s':>8} {'vmap s':>8} {'vmap c/s':>8} {'vmap |Δ|':>9}" if args.batched else ""
        timed: dict[tuple[int, bool], tuple[float, dict[str, list[float]]]] = {}

        def naive_run(count: int, batched: bool) -> tuple[float, dict[str, list[float]]]:
            # the same first `count` candidates are timed once, however many sizes extrapolate from them
            if (count, batched) not in timed:
                timed[count, batched] = naive_scores(folders[:count], module.backbone.ref, examples, batched=batched, device=device)
            return timed[count, batched]

        for size in args.sizes:
            measured = min(size, args.naive_limit or size)
            naive_time, naive = naive_run(measured, False)
            naive_total = naive_time * size / measured
            batched_total = None
            if args.naive_batched:
                batched_time, batched = naive_run(measured, True)
                batched_total = batched_time * size / measured
            mark = "~" if measured < size else " "
            for strategy in args.strategies:
                live_time, live = live_scores(hub, records[:size], module, examples, strategy, device)
                worst = max(abs(a - b) for a, b in zip(live[:measured], naive[strategy]))
                if args.naive_batched:
                    worst = max(worst, max(abs(a - b) for a, b in zip(live[:measured], batched[strategy])))
                line = f"{size:>4} {strategy:<8} {live_time:>8.1f} {live_time / size:>7.3f} {mark}{naive_total:>8.1f} {naive_total / size:>7.3f} {naive_total / live_time:>5.1f}x"
                if batched_total is not None:
                    line += f" {mark}{batched_total:>9.1f} {batched_total / live_time:>5.1f}x"
                line += f" {worst:>9.1e}" + ("" if worst <= 1e-5 else "  SCORES DISAGREE")
                if args.batched:
                    vmap_time, vmap = live_scores(hub, records[:size], module, examples, strategy, device, args.batched)
                    apart = max(abs(a - b) for a, b in zip(live, vmap))
                    line += f" {size / live_time:>8.2f} {vmap_time:>8.1f} {size / vmap_time:>8.2f} {apart:>9.1e}" + (
                        "" if apart <= 1e-5 else "  VMAP DISAGREES"
                    )
                    worst = max(worst, apart)
                lines.append(line)
                print(line, flush=True)
                if worst > 1e-5:
                    raise SystemExit(f"scores disagree by {worst:.2e} > 1e-5 at N={size}, {strategy}")
        print()
        print(header)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
