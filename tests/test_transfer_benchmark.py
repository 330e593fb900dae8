"""benchmarks/transfer.py end to end on a 3-task toy suite with tiny budgets: outputs, resume, and the data each arm reads."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from hub.datasets import TaskCard, from_records, load_dataset, write_dataset
from hub.embeddings import DatasetEncoder
from hub.formulations.cross_encoder import CrossEncoderFormulation

ROOT = Path(__file__).resolve().parents[1]

WORDS = {
    "toy-animal": (
        ["dog", "cat", "horse", "cow", "sheep", "goat", "wolf", "fox", "bear", "lion"],
        ["rock", "chair", "cloud", "spoon", "river", "lamp", "brick", "glass", "paper", "stone"],
    ),
    "toy-plant": (
        ["oak", "rose", "fern", "moss", "pine", "tulip", "ivy", "palm", "reed", "lily"],
        ["car", "knife", "song", "shoe", "wall", "bell", "coin", "door", "rope", "sand"],
    ),
    "toy-tool": (
        ["hammer", "saw", "drill", "wrench", "chisel", "axe", "file", "rasp", "awl", "vise"],
        ["rain", "joy", "tiger", "salt", "moon", "snow", "duck", "milk", "wind", "fish"],
    ),
}
TINY = [
    "--methods", "lora", "--shots", "1", "2", "--seeds", "0", "--pool-size", "1", "--workers", "1", "--device", "cpu",
    "--source-max-steps", "2", "--source-eval-every", "1", "--target-max-steps", "2", "--target-eval-every", "1", "--tune-steps", "1",
]  # fmt: skip


def load_benchmark():
    spec = importlib.util.spec_from_file_location("transfer_benchmark", ROOT / "benchmarks" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_toy_suite(root: Path) -> None:
    for name, (positive, negative) in WORDS.items():
        card = TaskCard(name, "toy" if name != "toy-tool" else "tools", "pair", f"is it a {name[4:]}?", {"yes": "yes", "no": "no"})
        rows = [{"text": word, "text_pair": f"a kind of {name[4:]}", "label": "yes"} for word in positive] + [
            {"text": word, "text_pair": f"a kind of {name[4:]}", "label": "no"} for word in negative
        ]
        # train: 6 per label (k train + k dev per label for k <= 3), dev: 2 per label, test: 2 per label.
        splits = {"train": rows[0:6] + rows[10:16], "dev": rows[6:8] + rows[16:18], "test": rows[8:10] + rows[18:20]}
        write_dataset(from_records(card, splits), root / name)


def examples_read(monkeypatch) -> list[tuple[str, str | None]]:
    """Every (text, text_pair) any model reads from now on: the cross-encoder's collate and the dataset encoder (the
    similarity that retrieval and the oracle's subset rank by), spied."""
    seen: list[tuple[str, str | None]] = []
    collate, embed = CrossEncoderFormulation.collate, DatasetEncoder.embed

    def spy(self, examples):
        seen.extend((example.text, example.text_pair) for example in examples)
        return collate(self, examples)

    def spy_embed(self, dataset, *args, **kwargs):
        # Every example of every split it is given: it embeds the train split (else dev), so this is all it may read.
        seen.extend((example.text, example.text_pair) for examples in dataset.splits.values() for example in examples)
        return embed(self, dataset, *args, **kwargs)

    monkeypatch.setattr(CrossEncoderFormulation, "collate", spy)
    monkeypatch.setattr(DatasetEncoder, "embed", spy_embed)
    return seen


def test_transfer_benchmark_end_to_end_and_resume(tmp_path, capsys):
    bench = load_benchmark()
    suite = tmp_path / "suite"
    write_toy_suite(suite)
    out = tmp_path / "out"
    arms = ["random", "average", "group-average", "loss", "kl", "cos", "random-pool", "shuffled:cos"]
    argv = ["--suite", str(suite), "--out", str(out), *TINY, "--strategies", *arms]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "## lora, 1-shot" in printed and "## lora, 2-shot" in printed and "Δ random [95 % CI]" in printed

    with (out / "runs.csv").open() as handle:
        runs = list(csv.DictReader(handle))
    targets, shots, seeds = 3, 2, 1
    assert len(runs) == targets * len(arms) * shots * seeds
    assert {row["arm"] for row in runs} == set(arms)
    assert all(0.0 <= float(row["test_acc"]) <= 1.0 for row in runs)
    results = (out / "results.md").read_text()
    for arm in arms:
        assert f"| {arm} |" in results
    assert "Top-weighted source per target" in results and "Related or merely sharp?" in results
    for name in ["average", "group-average", "loss", "kl", "cos", "random-pool", "shuffled-cos"]:
        assert (out / f"weights-{name}.png").stat().st_size > 0

    # Every ensemble's weights sum to one over the other tasks; the target is never a source.
    with (out / "weights.csv").open() as handle:
        weights = list(csv.DictReader(handle))
    groups: dict[tuple, list[dict]] = {}
    for row in weights:
        groups.setdefault((row["target"], row["shots"], row["seed"], row["arm"]), []).append(row)
    for (target, *_rest, arm), rows in groups.items():
        assert target not in {row["source"] for row in rows}
        assert sum(float(row["weight"]) for row in rows) == pytest.approx(1.0, abs=1e-5)
        if arm in ("average", "loss", "kl", "cos", "shuffled:cos"):
            assert {row["source"] for row in rows} == set(WORDS) - {target}
    # group-average: the target's category only; toy-tool is alone in its category, so it keeps the default init and says so.
    stored = [json.loads(line) for path in (out / "runs").rglob("*.jsonl") for line in path.read_text().splitlines()]
    lone = [row for row in stored if row.get("kind") == "run" and row["arm"] == "group-average" and row["target"] == "toy-tool"]
    assert len(lone) == shots * seeds and all(row["chosen"] == "random" and "no source of category 'tools'" in row["rationale"] for row in lone)

    # The arms of a cell share one evaluator; each scoring arm is charged the scoring it reused, the others nothing.
    scored = [row for row in stored if row.get("kind") == "run" and row["arm"] in ("loss", "cos")]
    unscored = [row for row in stored if row.get("kind") == "run" and row["arm"] in ("random", "average", "group-average", "random-pool")]
    assert scored and all(row["reused_s"] > 0 for row in scored) and all(row["reused_s"] == 0 for row in unscored)

    # A rerun resumes: every run is on disk, so nothing is trained again.
    lines = sorted(path.read_text() for path in (out / "runs").rglob("*.jsonl"))
    assert bench.main(argv) == 0
    assert sorted(path.read_text() for path in (out / "runs").rglob("*.jsonl")) == lines
    with (out / "sources.csv").open() as handle:
        assert all(row["reused"] == "1" for row in csv.DictReader(handle))
    # --oracle adds one arm per source (single:<task>) and the oracle's table; the stored arms are reused.
    assert bench.main([*argv, "--oracle"]) == 0
    with (out / "runs.csv").open() as handle:
        singles = {row["arm"] for row in csv.DictReader(handle) if row["arm"].startswith("single:")}
    assert singles == {f"single:{name}" for name in WORDS}
    results = (out / "results.md").read_text()
    assert "### The oracle (lora, 1-shot" in results and "% of oracle" in results
    # A changed budget is another protocol: its runs are new, the old lines stay but are not reported.
    assert bench.main(argv[: -len(arms)] + ["random", "--target-max-steps", "3"]) == 0
    with (out / "runs.csv").open() as handle:
        assert {row["arm"] for row in csv.DictReader(handle)} == {"random"}


def test_runs_made_against_other_sources_are_run_again_and_set_aside(tmp_path, capsys):
    """A source module replaced in the registry: every arm that reads sources runs again; random, which reads none, does not."""
    from hub import Hub
    from hub.backbones import resolve_base_model
    from hub.methods import get_method

    bench = load_benchmark()
    suite = tmp_path / "suite"
    write_toy_suite(suite)
    out = tmp_path / "out"
    argv = ["--suite", str(suite), "--out", str(out), *TINY, "--shots", "1", "--strategies", "random", "average"]
    assert bench.main(argv) == 0
    with Hub(out / "registry") as hub:
        (old,) = hub.list(task="toy-plant")
        tensors = {name: tensor * 2 for name, tensor in hub.load_tensors(old).items()}
        data = load_dataset(suite / "toy-plant")
        backbone = hub.backbone(resolve_base_model(None))
        hub.remove(old.id)
        hub.register(get_method("lora"), dict(old.config), tensors, data, backbone, metrics=old.metrics, tags=old.tags)
    capsys.readouterr()
    assert bench.main(argv) == 0
    stored = [json.loads(line) for path in (out / "runs").rglob("*.jsonl") for line in path.read_text().splitlines()]
    runs = [row for row in stored if row["kind"] == "run"]
    # toy-animal and toy-tool read toy-plant: their average runs again; toy-plant's own sources are unchanged.
    assert sorted((row["target"], row["arm"]) for row in runs) == sorted(
        [(target, "random") for target in WORDS] + [(target, "average") for target in WORDS] + [("toy-animal", "average"), ("toy-tool", "average")]
    )
    assert "2 runs made against other source modules than their cell's latest" in capsys.readouterr().out
    with (out / "runs.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2 * len(WORDS)


def test_no_arm_reads_a_labelled_target_example_outside_its_k_shot_sample(tmp_path, monkeypatch):
    """Every example any arm tokenizes (scoring, θ_t, training, early stopping) is in the sample; the test split only for the score."""
    bench = load_benchmark()
    suite = tmp_path / "suite"
    write_toy_suite(suite)
    registry = tmp_path / "registry"
    common = ["--suite", str(suite), "--registry", str(registry), *TINY]
    assert bench.main([*common, "--out", str(tmp_path / "sources"), "--strategies", "random"]) == 0  # sources trained here

    seen = examples_read(monkeypatch)
    every = [
        "random",
        "average",
        "group-average",
        "loss",
        "kl",
        "el2n",
        "grand",
        "cos",
        "weight-cos",
        "euclidean",
        "performance",
        "random-pool",
        "shuffled:cos",
        "shuffled:performance",
        "lorahub",
        "retrieval",
        "auto",
        "guarded",
        # composition operators (`<strategy>+<operator>`): the same sample, another way to compose the same weights
        "loss+svd",
        "group-average+ties",
        "retrieval+dare_ties",
        "average+magnitude_prune_svd",
        # two stages (`<strategy>@<N>`): the strategy weighs only the N sources nearest the sample
        "el2n@1",
    ]
    # Patience of one evaluation, counted only after 2 of the 3 steps: no arm's run may end by patience before step 2.
    budget = ["--target-max-steps", "3", "--target-patience", "1", "--target-min-steps", "2"]
    assert bench.main([*common, *budget, "--out", str(tmp_path / "arms"), "--targets", "toy-animal", "--strategies", *every]) == 0

    target = load_dataset(suite / "toy-animal")
    key = lambda example: (example.text, example.text_pair)  # noqa: E731
    allowed = {key(example) for shots in (1, 2) for split in ("train", "dev") for example in target.few_shot(shots, 0).split(split)}
    labelled = {key(example) for split in ("train", "dev") for example in target.split(split)}
    test = {key(example) for example in target.split("test")}
    read = set(seen) & (labelled | test)
    assert read & allowed, "the spy saw none of the sample: it is not watching the arms"
    assert read - allowed - test == set(), f"arms read target examples outside the k-shot sample: {sorted(read - allowed - test)}"
    assert not {key(example) for example in target.split("dev")} & set(seen)  # the full dev split is never read
    runs = [json.loads(line) for line in (tmp_path / "arms" / "runs" / "lora" / "toy-animal.jsonl").read_text().splitlines()]
    # Over these barely trained sources lorahub may keep every weight at 0: a reported skip, after it read its train loss.
    ran, skipped = ({row["arm"] for row in runs if row["kind"] == kind} for kind in ("run", "skip"))
    assert ran | skipped == set(every) and skipped <= {"lorahub"}, skipped
    assert all(source["similarity"] is not None for cell in runs if cell["kind"] == "cell" for source in cell["sources"])  # retrieval's ranking
    trained = [row for row in runs if row["kind"] == "run"]
    assert all(row["steps"] >= 2 for row in trained), [(row["arm"], row["steps"], row["stopped_by"]) for row in trained if row["steps"] < 2]
    assert {row["stopped_by"] for row in trained} <= {"patience", "cap"}
    for cell in [row for row in runs if row["kind"] == "cell"]:
        nearest = min(cell["sources"], key=lambda source: (-source["similarity"], source["module_id"]))  # nearest()'s order
        (two_stage,) = [row for row in trained if row["arm"] == "el2n@1" and (row["shots"], row["seed"]) == (cell["shots"], cell["seed"])]
        assert [module for module, _weight in two_stage["module_weights"]] == [nearest["module_id"]]
    assert len({module for row in trained if row["arm"] == "el2n" for module, _weight in row["module_weights"]}) > 1


def test_leave_one_target_out_never_picks_a_strategy_by_its_result_on_the_held_out_target():
    from benchmarks.transferbench.stats import leave_one_target_out

    # Test accuracy per (target, arm). "sharp" wins on t1 and t2 and collapses on t3; "steady" is middling everywhere;
    # "skipped" is best but did not run on t3 (a documented skip), so t3 falls back to the next best.
    acc = {
        ("t1", "random"): 0.5, ("t1", "sharp"): 0.9, ("t1", "steady"): 0.65, ("t1", "skipped"): 1.0,
        ("t2", "random"): 0.5, ("t2", "sharp"): 0.9, ("t2", "steady"): 0.65, ("t2", "skipped"): 1.0,
        ("t3", "random"): 0.5, ("t3", "sharp"): 0.0, ("t3", "steady"): 0.65,
    }  # fmt: skip
    runs = [
        {"method": "lora", "shots": 4, "seed": seed, "target": target, "arm": arm, "test_acc": value} for (target, arm), value in acc.items() for seed in (0, 1)
    ]
    gains, picks = leave_one_target_out(runs, "lora", 4, ["sharp", "steady", "skipped"])
    # t3: skipped is out; on t1 and t2 sharp (+40) beats steady (+15), so sharp, and its -50 there is what the choice scores.
    # Had t3's own results entered the choice, sharp's mean (+40 + 40 - 50) / 3 = +10 would have lost to steady's +15.
    assert picks == {"t1": "skipped", "t2": "skipped", "t3": "sharp"}
    assert gains == pytest.approx({("t1", 0): 50, ("t1", 1): 50, ("t2", 0): 50, ("t2", 1): 50, ("t3", 0): -50, ("t3", 1): -50})


@pytest.mark.parametrize(
    ("arm", "message"),
    [
        ("loss+cat", "cat concatenates ranks"),
        ("loss+mean", "unknown --combine 'mean'"),
        ("random+svd", "random composes nothing, so it takes no operator or candidates"),
        ("nearest+svd", "unknown strategy 'nearest'"),
        ("el2n@0", "the count after @ must be a whole number of candidates of at least 1"),
        ("el2n@ten+svd", "the count after @ must be a whole number"),
        ("random@3", "random composes nothing, so it takes no operator or candidates"),
        ("el2n+svd@20", "the candidates come before the operator, e.g. el2n@20\\+svd"),
    ],
)
def test_a_bad_operator_arm_is_refused_before_any_work(tmp_path, arm, message):
    bench = load_benchmark()
    suite = tmp_path / "suite"
    write_toy_suite(suite)
    with pytest.raises(SystemExit, match=message):
        bench.main(["--suite", str(suite), "--out", str(tmp_path / "out"), *TINY, "--strategies", "random", arm])
    assert not (tmp_path / "out" / "registry").exists()  # no source was trained


def test_the_curve_takes_every_seed_at_its_ends_and_the_first_in_between():
    bench = load_benchmark()
    assert [bench.seeds_at(size, (20, 50, 0), (0, 1)) for size in (20, 50, 0)] == [(0, 1), (0,), (0, 1)]
    assert bench.seeds_at(50, (50,), (0, 1)) == (0, 1)


def test_the_lab_preset_reads_only_the_k_shot_sample_over_each_pool_size(tmp_path, monkeypatch):
    """--lab: the sources are the manifest's pool (never the target's task), and no arm of the preset reads a labelled
    target example outside its k-shot sample, at every pool size."""
    from benchmarks import lab_pool
    from benchmarks.transferbench.pool import ALL
    from benchmarks.transferbench.settings import LAB

    root = tmp_path / "suites"
    write_toy_suite(root / "toys")
    registry, manifest = tmp_path / "registry", tmp_path / "manifest.csv"
    modules = {row["module_id"] for row in lab_pool.build(registry, manifest, root, ["toys"], kinds=("early",), log=lambda line: None)}
    seen = examples_read(monkeypatch)
    bench = load_benchmark()
    arms = list(LAB["strategies"])
    common = ["--lab", "--suite", str(root), "--manifest", str(manifest), "--registry", str(registry), *TINY, "--targets", "toy-animal", "--strategies", *arms]
    lab = tmp_path / "lab"

    class Interrupted(Exception):
        pass

    def interrupted(*args, **kwargs):
        raise Interrupted

    # Stopped after its first phase (the full pool, 1 shot): the pool's report and settings describe all of the pool's
    # runs under the preset, not that phase alone; the next invocation goes on from there.
    write_curve = bench.write_curve
    monkeypatch.setattr(bench, "write_curve", interrupted)
    with pytest.raises(Interrupted):
        bench.main([*common, "--lab-pool", "1", str(ALL), "--out", str(lab)])
    assert json.loads((lab / "pool-all" / "settings.json").read_text())["shots"] == [1, 2]
    assert "## lora, 1-shot" in (lab / "pool-all" / "results.md").read_text()
    monkeypatch.setattr(bench, "write_curve", write_curve)
    assert bench.main([*common, "--lab-pool", "1", str(ALL), "--out", str(lab)]) == 0
    for size in (1, ALL):
        out = lab / f"pool-{size or 'all'}"
        with (out / "sources.csv").open() as handle:
            sources = list(csv.DictReader(handle))
        assert len(sources) == (size or 2) and "toy-animal" not in {row["task"] for row in sources}
        assert {row["module_id"] for row in sources} <= modules
        with (out / "weights.csv").open() as handle:
            assert "toy-animal" not in {row["source"] for row in csv.DictReader(handle)}
        runs = [json.loads(line) for line in (out / "runs" / "lora" / "toy-animal.jsonl").read_text().splitlines()]
        assert {row["arm"] for row in runs if row["kind"] in ("run", "skip") and not row["arm"].startswith("single:")} == set(arms)
        # The oracle: at the full pool only, at the smallest shots only, over both of its modules (the subset is larger)
        singles = {(row["arm"], row["shots"]) for row in runs if row["kind"] == "run" and row["arm"].startswith("single:")}
        assert singles == ({(f"single:{row['task']}", 1) for row in sources} if size == ALL else set())
    # The curve: one row per arm and pool size; the toy pool holds early checkpoints only, so average's weight is all junk.
    curve = (lab / "curve.md").read_text()
    for shots in (1, 2):
        (row,) = [line for line in curve.split(f"## lora, {shots}-shot")[1].split("\n## ")[0].splitlines() if line.startswith("| average | all (2) |")]
        assert row.endswith("| 100.0 |")
    assert "| random-pool | 1 |" in curve and "Goal at the full pool, best arm" in curve
    assert "The oracle ran at pool all (2) (lora, 1-shot)." in curve
    assert (lab / "curve.png").stat().st_size > 0
    # --report rewrites every pool's report and the curve from the stored runs, the design/judged split of the targets stated
    (lab / "curve.md").unlink()
    assert bench.main([*common, "--lab-pool", "1", str(ALL), "--out", str(lab), "--report"]) == 0
    without_command = lambda text: [line for line in text.splitlines() if not line.startswith("Command:")]  # noqa: E731
    assert without_command((lab / "curve.md").read_text()) == without_command(curve)
    assert (
        "design targets (the default and anything tuned on the lab pool was designed on these) none; judged targets toy-animal."
        in (lab / "pool-all" / "results.md").read_text()
    )

    target = load_dataset(root / "toys" / "toy-animal")
    key = lambda example: (example.text, example.text_pair)  # noqa: E731
    allowed = {key(example) for shots in (1, 2) for split in ("train", "dev") for example in target.few_shot(shots, 0).split(split)}
    labelled = {key(example) for split in ("train", "dev") for example in target.split(split)}
    test = {key(example) for example in target.split("test")}
    read = set(seen) & (labelled | test)
    assert read & allowed, "the spy saw none of the sample: it is not watching the arms"
    assert read - allowed - test == set(), f"arms read target examples outside the k-shot sample: {sorted(read - allowed - test)}"


def test_the_oracle_subset_is_the_nearest_plus_a_draw_seeded_by_the_cell():
    from benchmarks.transferbench.oracle import Source, arm_names, oracle_arms, oracle_sources

    # Ten modules of five tasks (two each); similarity rises with the module id; module 9 has none (pushed without a dataset).
    sources = [Source(f"task-{i % 5}", i, None if i == 9 else i / 10) for i in range(10)]
    picked = oracle_sources(sources, (3, 2), "t", 4, 0)
    assert [source.module_id for source in picked[:3]] == [8, 7, 6]
    assert len(picked) == 5 and set(picked[3:]) <= set(sources) - set(picked[:3])
    assert oracle_sources(list(reversed(sources)), (3, 2), "t", 4, 0) == picked  # the draw does not depend on the sources' order
    draws = {frozenset(oracle_sources(sources, (3, 2), *cell)[3:]) for cell in [("t", 4, seed) for seed in range(5)] + [("u", 4, 0), ("t", 16, 0)]}
    assert len(draws) > 1  # seeded by (target, shots, seed)
    assert 9 not in {source.module_id for source in oracle_sources(sources, (9, 0), "t", 4, 0)}  # no similarity: never among the nearest
    assert set(oracle_sources(sources, (20, 10), "t", 4, 0)) == set(oracle_sources(sources, None, "t", 4, 0)) == set(sources)
    # A task with several modules: every arm names its module; otherwise the task.
    assert arm_names(sources)[:2] == ["single:task-0#0", "single:task-1#1"]
    assert arm_names([Source("a", 1, 0.1), Source("b", 2, 0.2)]) == ["single:a", "single:b"]
    arms = oracle_arms(sources, (3, 2), "t", 4, 0)
    assert len(set(arms)) == 5 and {"single:task-3#8", "single:task-2#7", "single:task-1#6"} <= set(arms)


def test_the_lab_oracle_trains_from_the_nearest_and_seeded_random_modules_each_named_by_id(tmp_path, monkeypatch):
    """--lab's oracle over a pool where each task has two modules: per cell, the oracle's arms are the NEAREST modules by
    dataset-embedding similarity to the k-shot sample plus RANDOM others drawn by (target, shots, seed), each arm named by its
    module; the report says over which sources and that the oracle is then a lower bound; no arm reads a labelled target
    example outside the k-shot sample, the similarity included."""
    from benchmarks import lab_pool
    from benchmarks.transferbench.oracle import Source, oracle_sources
    from hub import Hub

    root = tmp_path / "suites"
    write_toy_suite(root / "toys")
    registry, manifest, lab = tmp_path / "registry", tmp_path / "manifest.csv", tmp_path / "lab"
    out = lab / "pool-all"
    built = lab_pool.build(registry, manifest, root, ["toys"], kinds=("early", "undertrained"), log=lambda line: None)
    pool = {int(row["module_id"]): row["task"] for row in built if row["task"] != "toy-animal"}
    assert len(pool) == 4 and len(set(pool.values())) == 2  # two tasks, two modules each
    seen = examples_read(monkeypatch)
    bench = load_benchmark()
    common = ["--lab", "--lab-pool", "0", "--suite", str(root), "--manifest", str(manifest), "--registry", str(registry), "--out", str(lab), *TINY]
    common += ["--shots", "1", "--targets", "toy-animal", "--strategies", "random", "average"]
    assert bench.main([*common, "--oracle-subset", "1", "1"]) == 0

    lines = (out / "runs" / "lora" / "toy-animal.jsonl").read_text()
    stored = [json.loads(line) for line in lines.splitlines()]
    (cell,) = [row for row in stored if row["kind"] == "cell"]
    singles = [row for row in stored if row["kind"] == "run" and row["arm"].startswith("single:")]
    arms = [row["arm"] for row in singles]
    assert len(arms) == len(set(arms)) == 2
    for row in singles:  # each arm names one module and composes it alone
        task, module = row["arm"].removeprefix("single:").split("#")
        assert pool[int(module)] == task and row["module_weights"] == [[int(module), 1.0]]
    # The similarity is the target's k-shot sample's: what `adapters search` gives for the sample alone.
    target = load_dataset(root / "toys" / "toy-animal")
    with Hub(registry) as hub:
        hits = {hit.module.id: hit.similarity for hit in hub.search(target.few_shot(1, 0).without_test(), top_k=10)}
    assert {row["module_id"]: row["similarity"] for row in cell["sources"]} == pytest.approx({module: hits[module] for module in pool})
    nearest = max(cell["sources"], key=lambda row: row["similarity"])["module_id"]
    chosen = {int(arm.split("#")[1]) for arm in arms}
    assert nearest in chosen
    sources = [Source(row["source"], row["module_id"], row["similarity"]) for row in cell["sources"]]
    assert chosen == {source.module_id for source in oracle_sources(sources, (1, 1), "toy-animal", 1, 0)}
    results = (out / "results.md").read_text()
    assert (
        "It is over 2 of 4 sources per (target, seed): the 1 nearest by dataset embedding to the k-shot sample plus 1 of the others drawn "
        "at random (seeded by target, shots and seed); so it is a lower bound on the oracle" in results
    )
    assert "| average |" in results.split("### The oracle (lora, 1-shot")[1]
    assert "The oracle ran at pool all (4) (lora, 1-shot). It is over 2 of 4 sources per (target, seed)" in (lab / "curve.md").read_text()

    # A smaller subset trains nothing: its arm is stored, and the report counts only the subset's arm, setting the other aside.
    assert bench.main([*common, "--oracle-subset", "1", "0"]) == 0
    assert (out / "runs" / "lora" / "toy-animal.jsonl").read_text() == lines
    results = (out / "results.md").read_text()
    assert "It is over 1 of 4 sources per (target, seed): the 1 nearest" in results
    assert "1 runs of single-source arms outside the oracle's subset of their cell's sources" in results

    key = lambda example: (example.text, example.text_pair)  # noqa: E731
    allowed = {key(example) for split in ("train", "dev") for example in target.few_shot(1, 0).split(split)}
    labelled = {key(example) for split in ("train", "dev") for example in target.split(split)}
    test = {key(example) for example in target.split("test")}
    read = set(seen) & (labelled | test)
    assert read & allowed, "the spy saw none of the sample: it is not watching the arms"
    assert read - allowed - test == set(), f"arms read target examples outside the k-shot sample: {sorted(read - allowed - test)}"


@pytest.mark.parametrize(
    ("argv", "message"), [(["--oracle-subset", "20", "10"], "--oracle-subset goes with --oracle"), (["--oracle", "--oracle-subset", "0", "0"], "not both 0")]
)
def test_a_bad_oracle_subset_is_refused(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit):
        load_benchmark().parse(["--suite", str(tmp_path), *argv])
    assert message in capsys.readouterr().err
    lab = load_benchmark().parse(["--lab"])[0]
    assert lab.oracle and lab.oracle_subset == (20, 10)  # the lab preset's default
    assert load_benchmark().parse(["--suite", str(tmp_path), "--oracle"])[0].oracle_subset is None  # elsewhere every source
