"""Tests for store/vector_index.py on real faiss, small enough to run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from store import vector_index
from store.vector_index import (
    VectorIndex,
    VectorIndexCorrupt,
    VectorIndexError,
    VectorIndexMissing,
)

DIM = 32
# Builds of N vectors with this threshold are IVF (nprobe/nlist = 205/500, so
# genuinely approximate); exact builds use a threshold above N.
SMALL_THRESHOLD = 1_000
N = 20_000


def clustered(n: int, seed: int, clusters: int = 50) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(0).standard_normal((clusters, DIM)).astype(np.float32)
    points = centers[rng.integers(clusters, size=n)] + 0.5 * rng.standard_normal((n, DIM)).astype(np.float32)
    return points


def brute_force(ids: npt.NDArray[np.int64], x: npt.NDArray[np.float32], q: npt.NDArray[np.float32], k: int):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return ids[np.argsort(-(qn @ xn.T), axis=1)[:, :k]]


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    ids = np.arange(100, 100 + N, dtype=np.int64)
    return ids, clustered(N, seed=1), clustered(200, seed=2)


def build(data, index_type: str) -> VectorIndex:
    ids, x, _ = data
    threshold = SMALL_THRESHOLD if index_type == "ivf" else N + 1
    index = VectorIndex.build(ids, x, DIM, exact_threshold=threshold)
    assert index.index_type == index_type
    return index


def test_exact_returns_true_neighbours(data) -> None:
    ids, x, q = data
    index = build(data, "exact")
    scores, found = index.search(q, 10)
    np.testing.assert_array_equal(found, brute_force(ids, x, q, 10))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    # Queries are normalized, so scale does not matter and scores are cosines.
    scores_scaled, found_scaled = index.search(q * 7.0, 10)
    np.testing.assert_array_equal(found_scaled, found)
    assert np.all(scores <= 1.0 + 1e-5)


def test_missing_hits_are_minus_one(data) -> None:
    ids, x, q = data
    index = VectorIndex.build(ids[:3], x[:3], DIM)
    _, found = index.search(q[:1], 5)
    assert sorted(found[0, :3]) == sorted(ids[:3]) and list(found[0, 3:]) == [-1, -1]


def test_approximate_chosen_above_threshold_has_recall(data) -> None:
    ids, x, q = data
    index = build(data, "ivf")
    assert len(index) == N
    _, found = index.search(q, 10)
    truth = brute_force(ids, x, q, 10)
    recall = np.mean([len(np.intersect1d(f, t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.9


@pytest.mark.parametrize("index_type", ["exact", "ivf"])
def test_remove(data, index_type: str) -> None:
    ids, x, q = data
    index = build(data, index_type)
    _, before = index.search(q, 10)
    gone = np.unique(before[:, 0])
    assert index.remove(np.concatenate([gone, [-5, 10**12]])) == len(gone)
    assert len(index) == N - len(gone)
    assert not np.isin(gone, index.ids()).any()
    _, after = index.search(q, 10)
    assert not np.isin(after, gone).any()
    assert index.remove(gone) == 0


@pytest.mark.parametrize("index_type", ["exact", "ivf"])
def test_add_replaces_existing_ids(data, index_type: str) -> None:
    ids, x, q = data
    index = build(data, index_type)
    index.add(ids[:1], q[:1])
    index.add([10**9], q[1:2])
    assert len(index) == N + 1
    _, found = index.search(q[:2], 1)
    assert list(found[:, 0]) == [ids[0], 10**9]
    assert sorted(index.ids()) == sorted([*ids, 10**9])


def test_build_is_deterministic(data, tmp_path: Path) -> None:
    build(data, "ivf").save(tmp_path / "a.faiss", {})
    build(data, "ivf").save(tmp_path / "b.faiss", {})
    assert (tmp_path / "a.faiss").read_bytes() == (tmp_path / "b.faiss").read_bytes()


def test_invalid_vectors_are_rejected(data) -> None:
    ids, x, _ = data
    with pytest.raises(ValueError):
        VectorIndex.build(ids[:2], np.zeros((2, DIM)), DIM)
    with pytest.raises(ValueError):
        VectorIndex.build([1, 1], x[:2], DIM)
    with pytest.raises(ValueError):
        VectorIndex.build(ids[:2], x[:2, :8], DIM)
    with pytest.raises(ValueError):
        VectorIndex.build([], x[:2], DIM)


def test_empty_index(data) -> None:
    _, _, q = data
    index = VectorIndex.build([], [], DIM)
    assert (index.index_type, len(index), list(index.ids())) == ("exact", 0, [])
    assert list(index.search(q[:1], 2)[1][0]) == [-1, -1]


@pytest.mark.parametrize("index_type", ["exact", "ivf"])
def test_save_load_round_trip(data, index_type: str, tmp_path: Path) -> None:
    _, _, q = data
    index = build(data, index_type)
    meta = {"generation": 17, "dim": DIM, "index_type": index_type}
    index.save(tmp_path / "ds.faiss", meta)
    loaded, loaded_meta = VectorIndex.load(tmp_path / "ds.faiss")
    assert loaded_meta == meta
    assert (loaded.index_type, loaded.dim, len(loaded), loaded.params) == (index.index_type, DIM, N, index.params)
    for a, b in zip(index.search(q, 10), loaded.search(q, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_save_is_atomic_and_leaves_no_temp_files(data, tmp_path: Path, monkeypatch) -> None:
    index = build(data, "exact")
    path = tmp_path / "ds.faiss"
    index.save(path, {"generation": 1})
    index.save(path, {"generation": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.faiss", "ds.faiss.json"]

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(vector_index.faiss, "write_index", fail)
    with pytest.raises(OSError):
        index.save(path, {"generation": 3})
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.faiss", "ds.faiss.json"]
    assert VectorIndex.load(path)[1] == {"generation": 2}


def test_missing_files_raise(data, tmp_path: Path) -> None:
    path = tmp_path / "ds.faiss"
    with pytest.raises(VectorIndexMissing):
        VectorIndex.load(path)
    build(data, "exact").save(path, {})
    path.unlink()
    with pytest.raises(VectorIndexMissing):
        VectorIndex.load(path)


@pytest.mark.parametrize("index_type", ["exact", "ivf"])
@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "empty"])
def test_corrupt_index_file_raises(data, index_type: str, damage: str, tmp_path: Path) -> None:
    path = tmp_path / "ds.faiss"
    build(data, index_type).save(path, {"generation": 1})
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip_byte":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    with pytest.raises(VectorIndexCorrupt):
        VectorIndex.load(path)


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"format": 1}'])
def test_corrupt_sidecar_raises(data, content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "ds.faiss"
    build(data, "exact").save(path, {})
    (tmp_path / "ds.faiss.json").write_bytes(content)
    with pytest.raises(VectorIndexError):
        VectorIndex.load(path)


def test_sidecar_of_the_old_format_is_refused(data, tmp_path: Path) -> None:
    path = tmp_path / "ds.faiss"
    build(data, "exact").save(path, {})
    sidecar = json.loads((tmp_path / "ds.faiss.json").read_bytes())
    sidecar["format"], sidecar["kind"] = 1, sidecar.pop("index_type")
    (tmp_path / "ds.faiss.json").write_text(json.dumps(sidecar))
    with pytest.raises(VectorIndexCorrupt):
        VectorIndex.load(path)
