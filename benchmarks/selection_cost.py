"""Selection cost against pool size: search, loading, scoring and composition per target, one or two stages.

    python benchmarks/selection_cost.py --targets wn-isa-plant senti-polarity man-section pho-stress
        [--registry /root/deltahub-runs/lab-pool/registry] [--sizes 20 50 100 0] [--candidates 0 20] [--strategies loss el2n task-retrieval]

For each target (a k-shot sample of it, as the transfer benchmark draws), each pool of the lab
manifest (benchmarks/transferbench/pool.py: nested seeded subsets, the targets' tasks out; size 0:
all) and each `--candidates` N (0: score the whole pool; N: the dataset-embedding index first
narrows the pool to its N modules nearest the target, then the strategy scores only those):
seconds of search (embedding the target and querying the index), of loading the candidates'
tensors (read and digest-checked), and of scoring + weighting + composing; plus the share of the
weight put on junk modules. Nothing is trained and nothing is registered. Rows go to
benchmarks/results/lab-pool/selection-cost.csv as they are measured; then (or alone, with
--report) the summary per pool size, candidates and strategy goes to selection-cost.md beside it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.lab_pool import METHOD, lab_settings  # noqa: E402
from benchmarks.transferbench.pool import (  # noqa: E402
    ALL,
    DEFAULT_MANIFEST,
    DEFAULT_REGISTRY,
    ERRORS,
    PoolError,
    check_manifest,
    error_line,
    junk_share,
    kinds_of,
    load_suites,
    pools,
    read_manifest,
)
from ensembling.strategies import DEFAULT  # noqa: E402
from ensembling.strategies.auto import CANDIDATES  # noqa: E402

SCORING_CANDIDATES = CANDIDATES[:2]

COLUMNS = ("target", "pool", "candidates", "strategy", "scored", "search_s", "load_s", "score_compose_s", "total_s", "junk_share", "effective_sources")


def measure(
    registry: Path, manifest: Path, suites_root: Path, targets: list[str], sizes: list[int], candidates: list[int], strategies: list[str], shots: int, out: Path
) -> list[dict]:
    """One row per (target, pool size, candidates, strategy), written to `out` as measured."""
    from ensembling.ensemble import Options
    from ensembling.strategies import Needs, get_strategy
    from hub import Hub
    from hub.backbones import resolve_base_model
    from hub.methods import get_method
    from hub.transfer import candidate_of, compose_init, make_evaluator

    rows = read_manifest(manifest)
    tasks = load_suites(suites_root, sorted({row["suite"] for row in rows}))
    missing = [target for target in targets if target not in tasks]
    if missing:
        raise PoolError(f"no task {', '.join(missing)} in the manifest's suites; pick targets from them")
    settings = lab_settings(registry)
    kind_of = kinds_of(rows)
    by_size = pools(rows, set(targets), sizes)
    measured: list[dict] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with Hub(registry, create=False) as hub, out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        check_manifest(hub, rows, settings.base_model)
        method = get_method(METHOD)
        backbone = hub.backbone(resolve_base_model(settings.base_model))
        for target in targets:
            sample = tasks[target][1].few_shot(shots, 0).without_test()
            for size in sizes:
                members = {int(row["module_id"]) for row in by_size[size]}
                for n in candidates:
                    started = time.perf_counter()
                    if n:
                        hits = hub.search(sample, top_k=len(rows), base_model=settings.base_model, method=METHOD)
                        records = [hit.module for hit in hits if hit.module.id in members][:n]
                    else:
                        records = [hub.show(module_id) for module_id in sorted(members)]
                    searched = time.perf_counter()
                    loaded, _ = hub.transfer.load_candidates([candidate_of(record) for record in records], skip_corrupt=False)
                    ready = time.perf_counter()
                    for strategy in strategies:
                        begun = time.perf_counter()
                        # What Hub.ensemble builds for this strategy, and nothing more: similarities, a model to score with.
                        chosen = get_strategy(strategy)
                        ranked = hub.transfer.with_similarity(loaded, sample, backbone, method) if Needs.SIMILARITY in chosen.needs else loaded
                        config = dict(records[0].config)
                        evaluator = make_evaluator(backbone, method, config, sample, device=settings.device, seed=0) if chosen.needs_model else None
                        init = compose_init(chosen, ranked, sample, evaluator, Options(seed=0))
                        done = time.perf_counter()
                        row = {
                            "target": target, "pool": size or len(members), "candidates": n or "all", "strategy": strategy, "scored": len(loaded),
                            "search_s": f"{searched - started:.2f}", "load_s": f"{ready - searched:.2f}", "score_compose_s": f"{done - begun:.2f}",
                            "total_s": f"{searched - started + ready - searched + done - begun:.2f}",
                            "junk_share": f"{junk_share(init.weights, kind_of):.3f}", "effective_sources": f"{init.effective_sources:.1f}",
                        }  # fmt: skip
                        writer.writerow(row)
                        measured.append(row)
                        handle.flush()
                        print(" ".join(f"{key}={value}" for key, value in row.items()), flush=True)
    return measured


def summary(rows: list[dict], command: str) -> str:
    """Per (strategy, candidates, pool size): mean and worst seconds per target, modules scored, junk share; and how the
    seconds grow from the smallest pool to the largest against the pool's growth (sub-linear: the ratio below 1)."""
    groups: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for row in rows:
        groups.setdefault((row["strategy"], str(row["candidates"])), {}).setdefault(int(row["pool"]), []).append(row)
    lines = [
        "# Selection cost against pool size",
        "",
        f"Command: `{command}`. Seconds per target: search + loading + scoring and composition.",
        "",
        "| strategy | candidates | pool | targets | scored | mean s/target | worst s/target | junk share % |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    growth = []
    for (strategy, candidates), by_pool in groups.items():
        means = {}
        for size, measured in sorted(by_pool.items()):
            seconds = [float(row["total_s"]) for row in measured]
            means[size] = sum(seconds) / len(seconds)
            junk = 100 * sum(float(row["junk_share"]) for row in measured) / len(measured)
            scored = sum(int(row["scored"]) for row in measured) / len(measured)
            lines.append(f"| {strategy} | {candidates} | {size} | {len(measured)} | {scored:.0f} | {means[size]:.1f} | {max(seconds):.1f} | {junk:.1f} |")
        small, large = min(means), max(means)
        if large > small:
            ratio = (means[large] / means[small]) / (large / small)
            growth.append(
                f"{strategy}, candidates {candidates}: ×{means[large] / means[small]:.1f} seconds for ×{large / small:.1f} modules ({ratio:.2f} of linear)"
            )
    return "\n".join([*lines, "", "Growth from the smallest pool to the largest: " + "; ".join(growth) + ".", ""])


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", nargs="+", help="the targets to measure (required unless --report)")
    parser.add_argument("--registry", type=Path, default=DEFAULT_REGISTRY)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--suites-root", type=Path, default=ROOT / "suites")
    parser.add_argument("--sizes", nargs="+", type=int, default=[20, 50, 100, ALL], help="pool sizes; 0: every module (default: %(default)s)")
    parser.add_argument("--candidates", nargs="+", type=int, default=[0, 20], help="0: score the whole pool; N: two stages (default: %(default)s)")
    # The two strategies that score every candidate (auto's first two), whose cost grows with the pool, and the default.
    parser.add_argument("--strategies", nargs="+", default=list(dict.fromkeys([*SCORING_CANDIDATES, DEFAULT])))
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lab-pool" / "selection-cost.csv")
    parser.add_argument("--report", action="store_true", help="only write the summary of the rows in --out (measures nothing)")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    command = "python benchmarks/selection_cost.py " + " ".join(argv)
    if args.report:
        if not args.out.exists():
            print(f"error: no rows at {args.out}; measure them first (without --report)", file=sys.stderr)
            return 2
        return write_summary(read_rows(args.out), args.out, command)
    if not args.targets:
        parser.error("--targets is required (or --report)")
    import torch

    torch.set_num_threads(args.threads)
    try:
        rows = measure(args.registry, args.manifest, args.suites_root, args.targets, args.sizes, args.candidates, args.strategies, args.shots, args.out)
    except ERRORS as error:
        print(error_line(error, args.registry), file=sys.stderr)
        return 2
    return write_summary(rows, args.out, command)


def write_summary(rows: list[dict], out: Path, command: str) -> int:
    """The summary of `rows` beside their CSV (selection-cost.md) and on stdout."""
    text = summary(rows, command)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
