"""The lab-scale pool builder (benchmarks/lab_pool.py): its plan, resuming, and the manifest check against the registry.

Modules are real: the packaged MiniLM with LoRA, trained for one evaluation interval (the `early` and
`undertrained` kinds) on a tiny suite written here, in a real SQLite registry.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from synthetic import push

from benchmarks import lab_pool
from benchmarks.transferbench import pool
from hub import Hub


def write_suite(root: Path, name: str, tasks: list[str]) -> None:
    for task in tasks:
        folder = root / name / task
        folder.mkdir(parents=True)
        card = {"name": task, "category": "toy", "format": "classification", "description": "toy", "labels": {"a": "alpha", "b": "beta"}}
        (folder / "task.json").write_text(json.dumps(card))
        for split, n in (("train", 16), ("dev", 8), ("test", 4)):
            rows = [{"text": f"{task} {split} example {i}", "label": "ab"[i % 2]} for i in range(n)]
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def suites(tmp_path: Path) -> Path:
    root = tmp_path / "suites"
    write_suite(root, "one", ["one-a", "one-b"])
    write_suite(root, "two", ["two-a"])
    return root


def build(tmp_path: Path, suites: Path, limit: int | None) -> list[dict[str, str]]:
    return lab_pool.build(
        tmp_path / "registry", tmp_path / "manifest.csv", suites, ["one", "two"], limit, kinds=("early", "undertrained"), log=lambda line: None
    )


def module_ids(tmp_path: Path) -> list[int]:
    with Hub(tmp_path / "registry") as hub:
        return sorted(record.id for record in hub.list())


def rewrite(manifest: Path, index: int, **changes: str) -> None:
    rows = pool.read_manifest(manifest)
    rows[index].update(changes)
    pool.write_manifest(manifest, rows)


def test_plan_takes_turns_across_suites_round_by_round(suites: Path) -> None:
    tasks = pool.load_suites(suites, ["one", "two"])
    entries = lab_pool.plan(tasks)
    assert len(entries) == len(tasks) * len(lab_pool.KINDS)
    assert [(e.task, e.kind) for e in entries[:3]] == [("one-a", "source"), ("two-a", "source"), ("one-b", "source")]
    assert [e.kind for e in entries[:9:3]] == ["source", "early", "undertrained"]
    assert [(e.task, e.kind) for e in entries[9:12]] == [("one-a", "shuffled"), ("one-a", "duplicate"), ("two-a", "shuffled")]
    assert [e.kind for e in lab_pool.plan(tasks, ["duplicate", "source"])] == ["source"] * 3 + ["duplicate"] * 3
    assert {e.seed for e in entries if e.kind == "duplicate"} == {1}
    with pytest.raises(pool.PoolError, match="no suite"):
        pool.load_suites(suites, ["one", "missing"])


def test_shuffled_labels_permute_the_gold_answers(suites: Path) -> None:
    data = pool.load_suites(suites, ["one"])["one-a"][1]
    train = data.split("train")
    shuffled = lab_pool.shuffled_labels(train, seed=0)
    assert [e.text for e in shuffled] == [e.text for e in train]
    assert sorted(e.label for e in shuffled) == sorted(e.label for e in train)
    assert [e.label for e in shuffled] != [e.label for e in train]


def test_build_resumes_and_writes_the_manifest(tmp_path: Path, suites: Path) -> None:
    rows = build(tmp_path, suites, limit=2)
    assert [(row["task"], row["kind"]) for row in rows] == [("one-a", "early"), ("two-a", "early")]
    manifest = tmp_path / "manifest.csv"
    with manifest.open(newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames or ()) == pool.FIELDS
    with Hub(tmp_path / "registry") as hub:
        record = hub.show(int(rows[0]["module_id"]))
        assert record.blob_digest == rows[0]["digest"]
        assert {"lab-pool", "lab-kind:early", "junk", "lab-entry:one-a/early/0"} <= set(record.tags)
        assert float(rows[0]["chance"]) == 0.5 and int(rows[0]["steps"]) == lab_pool.lab_settings(tmp_path).source_eval_every
    # a rerun trains only what is missing
    rows = build(tmp_path, suites, limit=1)
    assert [(row["task"], row["kind"]) for row in rows][-1] == ("one-b", "early") and len(rows) == 3
    # a module registered by a run that died before writing its manifest row is adopted, not trained again
    before = module_ids(tmp_path)
    pool.write_manifest(manifest, rows[:2])
    rows = build(tmp_path, suites, limit=1)
    assert module_ids(tmp_path) == before and rows[-1]["module_id"] == str(before[-1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digest": "0" * 64}, "has digest 000000000000…, the registry's module"),
        ({"module_id": "999"}, "module 999 (one-a/early/seed 0) is not in the registry"),
        ({"base_model": "google/bert_uncased_L-2_H-128_A-2"}, "is on base model 'google/bert_uncased_L-2_H-128_A-2', the pool's is"),
        ({"kind": "junk"}, "line 2 (task 'one-a') has kind 'junk'"),
    ],
)
def test_a_bad_manifest_stops_before_anything_is_registered(tmp_path: Path, suites: Path, change: dict, message: str, capsys) -> None:
    build(tmp_path, suites, limit=1)
    manifest = tmp_path / "manifest.csv"
    rewrite(manifest, 0, **change)
    before = module_ids(tmp_path)
    with pytest.raises(pool.PoolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build(tmp_path, suites, limit=1)
    assert module_ids(tmp_path) == before
    # the command line says it in one line, exit 2
    argv = ["check", "--registry", str(tmp_path / "registry"), "--manifest", str(manifest)]
    assert lab_pool.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: manifest ") and "\n" not in err


def test_a_registry_the_script_cannot_open_is_one_line_and_the_build_upgrades_it(tmp_path: Path, suites: Path, capsys) -> None:
    """check opens the registry without creating or upgrading it: a missing one or an old schema is one line, exit 2."""
    from alembic import command

    from store.db import alembic_config, make_engine

    registry, manifest = tmp_path / "registry", tmp_path / "manifest.csv"
    argv = ["check", "--registry", str(registry), "--manifest", str(manifest)]
    assert lab_pool.main(argv) == 2 and not registry.exists()
    assert (
        capsys.readouterr().err
        == f"error: registry {registry} does not exist; check the path, or create the registry by upgrading its database: adapters db upgrade --registry {registry}\n"
    )
    Hub.upgrade(registry)
    engine = make_engine(f"sqlite:///{registry / 'registry.db'}")
    try:
        command.downgrade(alembic_config(engine), "-1")
    finally:
        engine.dispose()
    assert lab_pool.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the registry schema is at revision ") and err.count("\n") == 1, err
    # the build, the pool's one writer, brings the schema along before it reads the manifest against the registry
    assert build(tmp_path, suites, limit=0) == []
    assert lab_pool.main(argv) == 0


def test_a_registry_module_on_another_base_model_is_refused(tmp_path: Path, suites: Path) -> None:
    rows = build(tmp_path, suites, limit=1)
    with Hub(tmp_path / "registry") as hub:
        other, _ = push(hub.registry, seed=7)  # same base name, other architecture hash
    manifest = tmp_path / "manifest.csv"
    rewrite(manifest, 0, module_id=str(other.id), digest=other.blob_digest)
    with pytest.raises(pool.PoolError, match=rf"module {other.id} .* in the registry, not"):
        build(tmp_path, suites, limit=1)
    assert len(rows) == 1


def manifest_rows(n: int) -> list[dict[str, str]]:
    kinds = pool.KINDS
    return [
        dict(zip(pool.FIELDS, (f"task-{i % 12}", "s", kinds[i % len(kinds)], "0", str(i + 1), f"{i:064x}", "m", "0.5", "0.5", "25", "25", "1.0")))
        for i in range(n)
    ]


def test_pools_are_nested_seeded_and_keep_the_targets_out() -> None:
    rows = manifest_rows(120)
    targets = {"task-0", "task-5"}
    chosen = pool.pools(rows, targets, sizes=(20, 50, pool.ALL), seed=0)
    ids = {size: [row["module_id"] for row in members] for size, members in chosen.items()}
    assert [len(ids[size]) for size in (20, 50, pool.ALL)] == [20, 50, 100]
    assert ids[50][:20] == ids[20] and ids[pool.ALL][:50] == ids[50]
    assert not any(row["task"] in targets for members in chosen.values() for row in members)
    # the same whatever the manifest's row order; another seed draws other pools
    assert pool.pools(rows[::-1], targets, sizes=(20,), seed=0)[20] == chosen[20]
    assert pool.pools(rows, targets, sizes=(20,), seed=1)[20] != chosen[20]


def test_a_module_listed_under_several_kinds_is_pooled_once_under_its_least_junk_kind() -> None:
    # The registry stores identical tensors once: a source whose best checkpoint is its step-25 checkpoint is also its early one.
    rows = manifest_rows(10)
    rows[1] = {**rows[1], "task": rows[0]["task"], "module_id": rows[0]["module_id"]}  # an early checkpoint that is the source
    rows[2] = {**rows[2], "task": rows[4]["task"], "module_id": rows[4]["module_id"]}  # an undertrained run that is the duplicate
    assert (rows[0]["kind"], rows[1]["kind"], rows[4]["kind"], rows[2]["kind"]) == ("source", "early", "duplicate", "undertrained")
    chosen = pool.pools(rows, set(), sizes=(pool.ALL,))[pool.ALL]
    assert len(chosen) == len({row["module_id"] for row in chosen}) == 8
    kinds = pool.kinds_of(rows[::-1])
    assert kinds[int(rows[0]["module_id"])] == "source" and kinds[int(rows[4]["module_id"])] == "duplicate"
    # A run whose best checkpoint is its first is the method's default init: junk, whatever its plan kind.
    rows[3] = {**rows[3], "best_step": "0"}
    assert pool.kinds_of(rows)[int(rows[3]["module_id"])] == pool.STALLED and pool.junk_share({int(rows[3]["module_id"]): 1.0}, pool.kinds_of(rows)) == 1.0


def test_plan_summary_has_one_row_per_kind_built() -> None:
    rows = [row for row in manifest_rows(10) if row["kind"] != "duplicate"]
    table = lab_pool.summary(rows).splitlines()
    assert table[2:] == [f"| {kind} | 2 | 2 | 1 | 1 | +0.0 |" for kind in pool.KINDS if kind != "duplicate"]


def test_junk_share_counts_absolute_weight_on_junk_kinds() -> None:
    kind_of = {1: "source", 2: "shuffled", 3: "early", 4: "duplicate"}
    assert pool.junk_share({1: 0.5, 2: 0.25, 3: 0.25}, kind_of) == 0.5
    assert pool.junk_share({1: 0.6, 4: 0.4}, kind_of) == 0.0
    assert pool.junk_share({1: -0.5, 2: 1.5}, kind_of) == 0.75


def test_selection_cost_scores_the_whole_pool_or_the_nearest_candidates(tmp_path: Path, suites: Path) -> None:
    from benchmarks import selection_cost

    build(tmp_path, suites, limit=3)  # the early checkpoints of one-a, two-a, one-b
    out = tmp_path / "cost.csv"
    rows = selection_cost.measure(tmp_path / "registry", tmp_path / "manifest.csv", suites, ["one-a"], [pool.ALL], [0, 1], ["loss", "task-retrieval"], 2, out)
    # one-a's own module is out of the pool; task-retrieval ranks by similarity, which it is given as Hub.ensemble gives it
    assert [(row["candidates"], row["strategy"], row["scored"]) for row in rows] == [
        ("all", "loss", 2), ("all", "task-retrieval", 2), (1, "loss", 1), (1, "task-retrieval", 1),
    ]  # fmt: skip
    assert all(row["junk_share"] == "1.000" for row in rows)  # every module here is an early checkpoint
    with out.open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4
    # The summary: one line per (strategy, candidates, pool size), and the growth from the smallest pool to the largest.
    text = selection_cost.summary(rows + [{**row, "pool": 1, "total_s": "1.00"} for row in rows], "cmd")
    assert "| loss | all | 1 | 1 | 2 |" in text and "| loss | all | 2 | 1 | 2 |" in text
    assert "Growth from the smallest pool to the largest: loss, candidates all: ×" in text
    assert selection_cost.main(["--out", str(out), "--report"]) == 0 and out.with_suffix(".md").read_text().startswith("# Selection cost")
