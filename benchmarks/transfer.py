"""Task-transfer benchmark: the paper's experiment under the fair protocol of docs/benchmarks.md, on any suite directory.

    python benchmarks/transfer.py --suite suites/wordnet --quick      # smoke test, ~10 min on 2 CPU cores
    python benchmarks/transfer.py --suite suites/wordnet --standard   # 8 targets, 2 seeds, 4 and 16 shots (2 CPU cores: see README)
    python benchmarks/transfer.py --suite suites/wordnet --seeds 0 1 2 --methods lora adapter prefix --device cuda   # the full run
    python benchmarks/transfer.py --lab                   # the pool-size curve: sources from the lab pool's manifest, pools of 20, 50, all
    python benchmarks/transfer.py --lab --lab-pool 20     # one pool size (0: all)

Every task of the benchmark is a source for the others (leave-one-out). Sources are
trained once to their best dev checkpoint and kept in the benchmark's registry
(reused by reruns); each run is appended to out/…/runs/ as it ends, so an
interrupted benchmark resumes where it stopped. The protocol is in
benchmarks/transferbench/protocol.py, the statistics in stats.py, the report in report.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.transferbench import curve, default_rule, report  # noqa: E402
from benchmarks.transferbench.pool import (  # noqa: E402
    ALL,
    DEFAULT_MANIFEST,
    DEFAULT_REGISTRY,
    ERRORS,
    POOL_SIZES,
    PoolError,
    error_line,
    kinds_of,
    lab_sources,
    load_suites,
    pools,
    read_manifest,
)
from benchmarks.transferbench.runs import RunStore, of_current_pools  # noqa: E402
from benchmarks.transferbench.settings import BUDGETS, DESIGN_TARGETS, LAB, QUICK, STANDARD, Settings, parse_arm  # noqa: E402
from benchmarks.transferbench.stats import is_single  # noqa: E402


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def load_suite(root: Path) -> dict:
    """Every task folder (holding task.json) directly under `root`, by task name."""
    from hub.datasets import CARD_FILE, load_dataset

    if not root.is_dir():
        raise SystemExit(f"error: suite {root} is not a directory; point --suite at a folder of task folders")
    suite = {}
    for folder in sorted(path for path in root.iterdir() if (path / CARD_FILE).is_file()):
        data = load_dataset(folder)
        suite[data.card.name] = data
    if len(suite) < 2:
        raise SystemExit(f"error: suite {root} holds {len(suite)} task folder(s); leave-one-out needs at least 2")
    return suite


# ---------------------------------------------------------------- workers

_STATE: dict = {}


def _worker_init(settings: Settings, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _STATE["settings"] = settings


def _suite(settings: Settings) -> dict:
    if "suite" not in _STATE:
        _STATE["suite"] = load_tasks(settings)
    return _STATE["suite"]


def load_tasks(settings: Settings) -> dict:
    """The benchmark's tasks by name: its suite's, or with --lab those of every suite under the suites folder."""
    if settings.preset != LAB["preset"]:
        return load_suite(settings.suite)
    try:
        return {name: data for name, (_, data) in load_suites(settings.suite).items()}
    except PoolError as error:
        raise SystemExit(f"error: {error}") from None


def _hub():
    from hub import Hub

    if "hub" not in _STATE:
        _STATE["hub"] = Hub(_STATE["settings"].registry)
    return _STATE["hub"], _suite(_STATE["settings"])


def _source_job(task: str, method: str):
    from benchmarks.transferbench.sources import ensure_source

    hub, suite = _hub()
    info = ensure_source(hub, suite[task], method, _STATE["settings"])
    log(
        f"source {task} ({method}): {'reused' if info.reused else 'trained'} module {info.module_id}, dev acc {info.dev_acc:.3f} (chance {info.chance:.3f}), {info.steps} steps"
    )
    return info


def _cell_job(target: str, method: str, shots: int, seed: int, sources: dict) -> tuple[str, int, int]:
    from benchmarks.transferbench.protocol import run_cell

    hub, suite = _hub()
    settings = _STATE["settings"]
    run_cell(hub, suite, target, method, shots, seed, sources, settings, RunStore(settings.out, settings.protocol_digest()), log)
    return target, shots, seed


def run_all(settings: Settings, tasks: list[str], targets: list[str], unusable: set[tuple[str, int]], pool_sources: dict | None = None) -> list:
    """Sources, then every target's runs, over `settings.workers` processes (in this one when 1).

    `pool_sources` (the lab pool's modules, by task/kind/seed) replaces training one source per task.
    """
    cores = len(os.sched_getaffinity(0))  # the cores this process may use (taskset), not all the machine has
    threads = max(1, cores // settings.workers)
    if settings.workers == 1:
        _worker_init(settings, threads)
        pool = None
        submit = lambda fn, *args: _Done(fn(*args))  # noqa: E731
    else:
        pool = ProcessPoolExecutor(settings.workers, mp_context=get_context("spawn"), initializer=_worker_init, initargs=(settings, threads))
        submit = pool.submit
    try:
        sources = []
        for method in settings.methods:
            if pool_sources is None:
                infos = [future.result() for future in [submit(_source_job, task, method) for task in tasks]]
                by_task = {info.task: info for info in infos}
            else:
                by_task = {key: info for key, info in pool_sources.items() if info.method == method}
            sources += by_task.values()
            # Seed-major order: an interrupted run has every target at the seeds it reached. Within a
            # seed, the targets with the most candidates (the costliest) go first so workers end together.
            cost = {name: max(len(example.choices) for example in _suite(settings)[name].split("train")) for name in targets}
            jobs = [
                (target, shots, seed)
                for seed in settings.seeds
                for shots in settings.shots
                for target in sorted(targets, key=lambda name: -cost[name])
                if (target, shots) not in unusable
            ]
            for future in [submit(_cell_job, target, method, shots, seed, by_task) for target, shots, seed in jobs]:
                target, shots, seed = future.result()
                log(f"done: {target} {shots}-shot seed {seed} ({method})")
        return sources
    finally:
        if pool is not None:
            pool.shutdown()
        if "hub" in _STATE:
            _STATE.pop("hub").close()


class _Done:
    def __init__(self, value) -> None:
        self.value = value

    def result(self):
        return self.value


def stored_sources(settings: Settings, suite: dict, tasks: list[str]) -> list:
    from benchmarks.transferbench.sources import ensure_source
    from hub import Hub

    with Hub(settings.registry) as hub:
        found = [ensure_source(hub, suite[task], method, settings, train_missing=False) for method in settings.methods for task in tasks]
    return [info for info in found if info is not None]


def lab_pool_sources(settings: Settings, manifest: Path, size: int, targets: list[str]) -> dict:
    """The lab pool of `size` modules (none of the targets' tasks), checked against the registry; a one-line error otherwise."""
    from hub import Hub

    try:
        rows = read_manifest(manifest)
        if not rows:
            raise PoolError(f"manifest {manifest} lists no module; build the pool with benchmarks/lab_pool.py build")
        # create=False: the pool's registry is benchmarks/lab_pool.py's to make; a wrong path must not become an empty registry.
        with Hub(settings.registry, create=False) as hub:
            return lab_sources(hub, pools(rows, set(targets), (size,))[size], settings.base_model)
    except ERRORS as error:
        raise SystemExit(error_line(error, settings.registry)) from None


# ---------------------------------------------------------------- command line


@dataclass(frozen=True)
class LabPool:
    """--lab: which manifest, and the pool sizes to run (ALL: every eligible module)."""

    manifest: Path
    sizes: tuple[int, ...]


def parse(argv: Sequence[str]) -> tuple[Settings, LabPool | None]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1]
    )
    parser.add_argument("--suite", type=Path, default=None, help="a folder of task folders in the project's dataset format (--lab: the folder of the suites)")
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="a smoke test: 2 targets, 4 shots, 1 seed, a few arms")
    preset.add_argument(
        "--standard",
        action="store_true",
        help="the standard run: 8 targets over every category, 2 seeds, 4 and 16 shots, every paper strategy, baselines, controls",
    )
    preset.add_argument(
        "--lab",
        action="store_true",
        help=f"the pool-size axis: {len(LAB['targets'])} targets of 4 suites (designed on the 4 WordNet ones, judged on the others), "
        "sources from the lab pool's manifest",
    )
    parser.add_argument(
        "--lab-pool",
        type=int,
        nargs="+",
        default=None,
        help=f"--lab: the pool sizes (each a seeded subset without the targets' tasks; 0: all); default: {' '.join(map(str, POOL_SIZES))}",
    )
    parser.add_argument("--manifest", type=Path, default=None, help=f"--lab: the pool's manifest (default: {DEFAULT_MANIFEST.relative_to(ROOT)})")
    parser.add_argument(
        "--budget",
        choices=sorted(BUDGETS),
        default=None,
        help="the target budget of every arm: standard (36 steps) or converged (200, patience after 60 steps); --target-* options override it",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="default out/transfer-<preset> (--lab: the curve there, each pool size's runs in OUT/pool-<size>)"
    )
    parser.add_argument("--registry", type=Path, default=None, help="benchmark registry (default OUT/registry); trained sources are reused from it")
    for name in ("tasks", "targets", "methods", "strategies"):
        parser.add_argument(f"--{name}", nargs="+", default=None)
    for name in ("shots", "seeds"):
        parser.add_argument(f"--{name}", nargs="+", type=int, default=None)
    numbers = {
        "source-lr": float, "source-max-steps": int, "source-eval-every": int, "source-patience": int, "source-dev-cap": int,
        "target-lr": float, "target-max-steps": int, "target-eval-every": int, "target-patience": int, "target-min-steps": int, "batch-size": int,
        "test-cap": int, "score-examples": int, "tune-steps": int, "pool-size": int, "workers": int,
    }  # fmt: skip
    for name, kind in numbers.items():
        parser.add_argument(f"--{name}", type=kind, default=None)
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="also train each target from every source alone (one more training per source and sample): the oracle and its %% columns "
        "(--lab: always, at the full pool and the smallest shots)",
    )
    parser.add_argument(
        "--oracle-subset",
        type=int,
        nargs=2,
        metavar=("NEAREST", "RANDOM"),
        default=None,
        help="--oracle over a subset of each cell's sources, a lower bound on the oracle: the NEAREST by dataset embedding to the k-shot "
        "sample plus RANDOM others drawn by (target, shots, seed); default every source (--lab: 20 10)",
    )
    parser.add_argument("--report", action="store_true", help="only write the report of the runs stored so far (trains and runs nothing)")
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--device", default=None, help="auto, cpu or cuda")
    args = parser.parse_args(argv)
    if args.suite is None and not args.lab:
        parser.error("--suite is required (or --lab)")
    if args.oracle_subset is not None and not (args.oracle or args.lab):
        parser.error("--oracle-subset goes with --oracle (or --lab, which runs the oracle)")
    if args.oracle_subset is not None and (min(args.oracle_subset) < 0 or sum(args.oracle_subset) == 0):
        parser.error(f"--oracle-subset takes two counts of 0 or more, not both 0; got {' '.join(map(str, args.oracle_subset))}")
    if not args.lab and (args.lab_pool is not None or args.manifest is not None):
        parser.error("--lab-pool and --manifest go with --lab")
    if args.lab_pool is not None and min(args.lab_pool) < 0:
        parser.error(f"--lab-pool sizes must be 0 (all) or more, got {min(args.lab_pool)}")
    values: dict = dict(QUICK) if args.quick else dict(STANDARD) if args.standard else dict(LAB) if args.lab else {}
    if args.budget is not None:
        values.update(budget=args.budget, **BUDGETS[args.budget])
    for name in ("tasks", "targets", "methods", "strategies", "shots", "seeds", "oracle_subset"):
        if getattr(args, name) is not None:
            values[name] = tuple(getattr(args, name))
    for name in [*numbers, "base-model", "device"]:
        value = getattr(args, name.replace("-", "_"))
        if value is not None:
            values[name.replace("-", "_")] = value
            if name.startswith("target-"):
                values["budget"] = "custom"
    for name in numbers:
        value = values.get(name.replace("-", "_"))
        if value is not None and (value < 0 if name == "target-min-steps" else value <= 0):
            raise SystemExit(f"error: --{name} must be {'0 or more' if name == 'target-min-steps' else 'positive'}, got {value}")
    lab = LabPool(args.manifest or DEFAULT_MANIFEST, tuple(dict.fromkeys(args.lab_pool or POOL_SIZES))) if args.lab else None
    out = args.out or ROOT / "out" / f"transfer-{values.get('preset', 'custom')}"
    registry = args.registry or out / "registry"
    if lab is not None:  # OUT holds the curve and one folder per pool size
        registry = args.registry or DEFAULT_REGISTRY
    suite = args.suite or ROOT / "suites"
    values["oracle"] = args.oracle or values.get("oracle", False)
    settings = Settings(suite=suite, out=out, registry=registry, report_only=args.report, **values)
    if not settings.strategies:
        from ensembling.strategies import Family, of_family, shuffled_of

        names = of_family(Family.PAPER, Family.WEIGHTS, Family.BASELINE, Family.CONTROL)
        settings = replace(settings, strategies=tuple(names) + tuple(shuffled_of(name) for name in of_family(Family.PAPER, Family.WEIGHTS)))
    return settings, lab


def check(settings: Settings, suite: dict) -> tuple[list[str], list[str]]:
    from ensembling.errors import EnsemblingError
    from ensembling.strategies import NO_TRANSFER

    for name in settings.strategies:
        try:
            parse_arm(name)
        except EnsemblingError as error:
            raise SystemExit(f"error: --strategies: {error}") from None
    if NO_TRANSFER not in settings.strategies:
        raise SystemExit(f"error: --strategies must include {NO_TRANSFER} (every gain is measured against it)")
    tasks = list(settings.tasks) or sorted(suite)
    unknown = [name for name in tasks if name not in suite]
    if unknown:
        raise SystemExit(f"error: --tasks names {unknown[0]!r}, which is not in {settings.suite}")
    targets = list(settings.targets) or tasks
    outside = [name for name in targets if name not in tasks]
    if outside:
        raise SystemExit(f"error: target {outside[0]!r} is not one of the benchmark's tasks; add it with --tasks")
    return tasks, targets


def unusable_samples(settings: Settings, suite: dict, targets: list[str]) -> set[tuple[str, int]]:
    """The (target, shots) whose k-shot sample cannot be drawn (too few examples of a label): each said in one line, then left out."""
    from hub.errors import DatasetError

    unusable = set()
    for target in targets:
        for shots in settings.shots:
            try:
                for seed in settings.seeds:
                    suite[target].few_shot(shots, seed)
            except DatasetError as error:
                log(f"skip {target} at {shots} shots: {error}")
                unusable.add((target, shots))
    return unusable


def reportable(rows: list[dict], settings: Settings) -> tuple[list[dict], list[str]]:
    """The stored runs the report can use, and one line per kind it cannot (an arm no strategy of this deltahub runs; the oracle's
    arms without --oracle, or outside the subset of their cell's sources that this --oracle-subset draws)."""
    from benchmarks.transferbench.oracle import stored_oracle_arms
    from ensembling.errors import EnsemblingError

    subset = stored_oracle_arms(rows, settings.oracle_subset) if settings.oracle and settings.oracle_subset is not None else None
    runs, unknown, singles, outside = [], Counter(), 0, 0
    for row in rows:
        if row["kind"] != "run":
            continue
        if is_single(row["arm"]) and not settings.oracle:
            singles += 1
            continue
        if is_single(row["arm"]) and subset is not None and row["arm"] not in subset.get((row["target"], row["method"], row["shots"], row["seed"]), ()):
            outside += 1
            continue
        try:
            parse_arm(row["arm"])
        except EnsemblingError:
            unknown[row["arm"]] += 1
            continue
        runs.append(row)
    left_out = [f"{count} runs of arm {arm}: no strategy of that name in this deltahub" for arm, count in sorted(unknown.items())]
    if singles:
        left_out.append(f"{singles} runs of the oracle's single-source arms: pass --oracle to report them")
    if outside:
        left_out.append(
            f"{outside} runs of single-source arms outside the oracle's subset of their cell's sources (another --oracle-subset's, or a cell line without module ids)"
        )
    return runs, left_out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings, lab = parse(argv)
    try:
        print(run_benchmark(settings, argv) if lab is None else run_curve(settings, lab, argv))
    except ERRORS as error:  # a registry to upgrade, a missing module: one line, not a traceback
        print(error_line(error, settings.registry), file=sys.stderr)
        return 2
    return 0


def stored_runs(settings: Settings) -> tuple[list[dict], list[dict], list[dict], list[str]]:
    """Every reportable run stored under this protocol (whichever invocation made it), its cell and skip lines, and what was left out."""
    from ensembling.strategies import NO_TRANSFER

    store = RunStore(settings.out, settings.protocol_digest())
    stored, aside = of_current_pools(store.all_rows(store.targets(list(settings.methods)), list(settings.methods)), NO_TRANSFER)
    runs, left_out = reportable(stored, settings)
    if aside:
        left_out.append(f"{aside} runs made against other source modules than their cell's latest (kept on disk, rerun against these)")
    cells, skips = ([row for row in stored if row["kind"] == kind] for kind in ("cell", "skip"))
    return runs, cells, skips, left_out + store.other_protocols(list(settings.methods))


def run_benchmark(settings: Settings, argv: list[str], pool_sources: dict | None = None, report_as: Settings | None = None) -> str:
    """Run what is missing (nothing with --report), then write and return the report of every stored run of this protocol.

    `report_as`: the settings the report and settings.json describe when this run is one part of them (a curve's phase:
    one shots count and seed of a pool), so that an interrupted curve leaves each pool's whole report, not its last part's.
    """
    suite = load_tasks(settings)
    tasks, targets = check(settings, suite)
    unusable = set() if settings.report_only else unusable_samples(settings, suite, targets)
    shown = report_as or settings
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "settings.json").write_text(json.dumps(shown.to_json(), indent=2) + "\n", encoding="utf-8")
    command = "python benchmarks/transfer.py " + " ".join(argv)
    log(f"{len(tasks)} tasks, targets: {', '.join(targets)}; arms: {', '.join(settings.strategies)}; protocol {settings.protocol_digest()}")
    started = time.perf_counter()
    if pool_sources is not None:
        sources = list(pool_sources.values()) if settings.report_only else run_all(settings, tasks, targets, unusable, pool_sources)
    else:
        sources = stored_sources(settings, suite, tasks) if settings.report_only else run_all(settings, tasks, targets, unusable)
    # A curve's phase is one part of the report: its seconds are not the report's.
    wall = None if settings.report_only or report_as is not None else time.perf_counter() - started
    runs, cells, skips, left_out = stored_runs(shown)
    report_targets = [name for name in targets if any(run["target"] == name for run in runs)]
    report_targets += sorted({run["target"] for run in runs} - set(report_targets))
    text = report.render(runs, cells, skips, sources, shown, command, wall, report_targets, left_out)
    report.write_csvs(settings.out, runs, sources)
    report.heatmaps(settings.out, runs, shown, targets, tasks)
    (settings.out / "results.md").write_text(text, encoding="utf-8")
    return text


def run_curve(settings: Settings, lab: LabPool, argv: list[str]) -> str:
    """--lab: each pool size's runs in OUT/pool-<size>, the most informative first, then the curve (curve.md, curve.png).

    Seed by seed: each shots count at every pool size that takes the seed (the curve's ends first: the full pool, where
    the goal is read, then the smallest, then the sizes between), then the oracle's single-source arms (with --oracle,
    the lab default) at the full pool and the smallest shots only, the issue's budget. The curve is rewritten after each
    phase, so an interrupted run leaves the curve of what it reached. Sizes between the smallest and the largest take the
    first seed only: the curve's ends carry every seed.
    """
    by_largest = sorted(lab.sizes, key=lambda size: -(size or math.inf))
    order = list(dict.fromkeys([by_largest[0], by_largest[-1], *by_largest[1:-1]]))
    by_size = {
        size: replace(
            settings, out=settings.out / pool_folder(size), seeds=seeds_at(size, lab.sizes, settings.seeds), oracle=settings.oracle and size == order[0]
        )
        for size in order
    }
    sources = {size: lab_pool_sources(settings, lab.manifest, size, list(settings.targets)) for size in order}
    kind_of = kinds_of(read_manifest(lab.manifest))
    if not settings.report_only:
        for seed in settings.seeds:
            phases = [(size, shots, False) for shots in settings.shots for size in order if seed in by_size[size].seeds]
            phases += [(order[0], min(settings.shots), True)] if by_size[order[0]].oracle else []
            for size, shots, oracle in phases:
                run_benchmark(replace(by_size[size], shots=(shots,), seeds=(seed,), oracle=oracle), argv, sources[size], report_as=by_size[size])
                write_curve(settings, by_size, sources, kind_of, argv)
    else:
        for size, pool_settings in by_size.items():
            run_benchmark(pool_settings, argv, sources[size])
    return write_curve(settings, by_size, sources, kind_of, argv)


def seeds_at(size: int, sizes: Sequence[int], seeds: Sequence[int]) -> tuple[int, ...]:
    """Every seed at the smallest and the largest pool; the first alone in between (the issue's budget)."""
    order = lambda size: size or math.inf  # noqa: E731  (ALL, 0, is the largest)
    return tuple(seeds) if size in (min(sizes, key=order), max(sizes, key=order)) else tuple(seeds[:1])


def pool_folder(size: int) -> str:
    return f"pool-{size or 'all'}"


def write_curve(settings: Settings, by_size: dict[int, Settings], sources: dict[int, dict], kind_of: dict[int, str], argv: list[str]) -> str:
    found = [curve.Pool(size, len(sources[size]), stored_runs(pool_settings)[0]) for size, pool_settings in by_size.items()]
    judged = [target for target in settings.targets if target not in DESIGN_TARGETS]
    by_panel = curve.panels(found, settings.methods, settings.shots, list(settings.strategies), judged, kind_of)
    text = curve.render(found, by_panel, judged, "python benchmarks/transfer.py " + " ".join(argv), settings.oracle_subset)
    design = [target for target in settings.targets if target in DESIGN_TARGETS]
    for pool in found:
        for method in settings.methods if pool.size == ALL else ():
            text += "\n".join(["", *default_rule.section(pool.runs, method, settings.shots, list(settings.strategies), design, judged, kind_of)])
    settings.out.mkdir(parents=True, exist_ok=True)
    (settings.out / "curve.md").write_text(text, encoding="utf-8")
    curve.plot(found, by_panel, settings.out / "curve.png")
    return text


if __name__ == "__main__":
    sys.exit(main())
