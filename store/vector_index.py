"""faiss index over L2-normalized embeddings, keyed by database ids.

The index is a cache: the database holds the embeddings, and any index can be
rebuilt from ``(ids, vectors)``. Search is by inner product on normalized
vectors, i.e. cosine similarity. Small collections use exact search; past
``exact_threshold`` vectors, an inverted-file index (IVF) is used, because,
unlike faiss's HNSW, it supports removal by id.

On disk an index is two files written atomically: the faiss index at ``path``
and a JSON sidecar at ``path + ".json"`` holding the caller's metadata and the
sha256 of the index file. A missing, truncated or mismatched pair raises a
``VectorIndexError`` subclass, and the caller rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

import faiss
import numpy as np
import numpy.typing as npt

from store.files import atomic_write

__all__ = [
    "DEFAULT_EXACT_THRESHOLD",
    "IndexType",
    "VectorIndex",
    "VectorIndexCorrupt",
    "VectorIndexError",
    "VectorIndexMissing",
    "ivf_params",
    "set_num_threads",
]

IndexType = Literal["exact", "ivf"]

# Exact single-query search scans every vector; at d=384 and one core that is
# about 1 ms per 10k vectors, so past ~50k vectors IVF is several times faster
# (see benchmarks/search.py).
DEFAULT_EXACT_THRESHOLD: Final = 50_000

# Seed for the k-means training sample and for faiss's own k-means, so a
# rebuild from the same rows gives the same index.
SEED: Final = 1234
# k-means trains on this many points per list: faiss warns below 39, and its
# default cap of 256 makes training at 1M vectors several times slower.
TRAIN_POINTS_PER_LIST: Final = 40

# Vectors scanned per query by small IVF indexes; see ivf_params.
MIN_SCANNED: Final = 8192

# 2: the sidecar names the index type "index_type" (format 1 said "kind").
_SIDECAR_FORMAT: Final = 2
_IO_CHUNK: Final = 1 << 20


class VectorIndexError(Exception):
    """Base class for index errors; on any of them the caller should rebuild."""


class VectorIndexMissing(VectorIndexError):
    """The index file or its sidecar does not exist."""


class VectorIndexCorrupt(VectorIndexError):
    """The index file or its sidecar is unreadable, truncated or inconsistent."""


def set_num_threads(n: int) -> None:
    """Set the number of OpenMP threads faiss uses (process-wide)."""
    faiss.omp_set_num_threads(n)


def ivf_params(n: int) -> tuple[int, int]:
    """Return ``(nlist, nprobe)`` for an IVF index built over ``n`` vectors.

    nlist is 4*sqrt(n) rounded to a power of two, the low end of faiss's
    guideline: fewer, larger lists make each probe cost more but need fewer
    probes for the same recall. It is capped so that every list gets
    ``TRAIN_POINTS_PER_LIST`` training points.

    nprobe is the larger of nlist/64 and enough lists to scan
    ``MIN_SCANNED`` vectors. Small indexes have short lists and their
    queries' neighbours spread over many of them, so a fixed fraction of lists
    is too few there; at 1M, nlist/64 scans ~16k vectors. On the clustered
    384-d benchmark data this gives recall@10 >= 0.95 from 50k to 1M vectors
    at p50 <= 2 ms on one core (benchmarks/search.py).
    """
    if n < 1:
        raise ValueError("an IVF index needs at least one vector")
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    nlist = max(1, min(nlist, n // TRAIN_POINTS_PER_LIST))
    nprobe = min(nlist, max(nlist // 64, math.ceil(MIN_SCANNED * nlist / n)))
    return nlist, nprobe


def _as_ids(ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    arr = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    if len(np.unique(arr)) != len(arr):
        raise ValueError("duplicate ids")
    return arr


def _normalized(vectors: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32]:
    # Always copy: faiss.normalize_L2 works in place and the caller's array
    # must not change.
    arr = np.array(vectors, dtype=np.float32, order="C", copy=True)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1) if arr.size else arr.reshape(0, dim)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {arr.shape}")
    norms = np.linalg.norm(arr, axis=1)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("vectors must be finite and non-zero")
    faiss.normalize_L2(arr)
    return arr


def _atomic_write(path: Path, write: Callable[[Callable[[bytes], None]], None]) -> str:
    """Write ``path`` atomically through ``write(sink)``; return the sha256."""
    digest = hashlib.sha256()

    def fill(out: BinaryIO) -> None:
        def sink(chunk: bytes) -> None:
            digest.update(chunk)
            out.write(chunk)

        write(sink)

    atomic_write(path, fill, prefix=f".{path.name}.", suffix=".tmp")
    return digest.hexdigest()


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


class VectorIndex:
    """Cosine-similarity index from int64 ids to ``dim``-dimensional vectors.

    Construct with :meth:`build` or :meth:`load`. ``add`` replaces the vector
    of an id already present. Not thread-safe for concurrent writes.
    """

    def __init__(self, index: faiss.Index, index_type: IndexType) -> None:
        self._index = index
        self._index_type: IndexType = index_type

    @classmethod
    def build(
        cls,
        ids: npt.ArrayLike,
        vectors: npt.ArrayLike,
        dim: int,
        exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
    ) -> VectorIndex:
        """Build an index over ``(ids, vectors)``: exact below ``exact_threshold`` rows, IVF otherwise."""
        id_arr = _as_ids(ids)
        x = _normalized(vectors, dim)
        if len(x) != len(id_arr):
            raise ValueError(f"{len(id_arr)} ids for {len(x)} vectors")
        if len(id_arr) < exact_threshold:
            index: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            index_type: IndexType = "exact"
        else:
            index = cls._trained_ivf(x, dim)
            index_type = "ivf"
        index.add_with_ids(x, id_arr)
        return cls(index, index_type)

    @staticmethod
    def _trained_ivf(x: npt.NDArray[np.float32], dim: int) -> faiss.IndexIVFFlat:
        nlist, nprobe = ivf_params(len(x))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = SEED
        n_train = min(len(x), nlist * TRAIN_POINTS_PER_LIST)
        if n_train < len(x):
            rows = np.random.default_rng(SEED).choice(len(x), n_train, replace=False)
            sample = x[np.sort(rows)]
        else:
            sample = x
        index.train(sample)
        index.nprobe = nprobe
        return index

    @property
    def index_type(self) -> IndexType:
        return self._index_type

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def params(self) -> dict[str, int]:
        """Search parameters of an IVF index (``nlist``, ``nprobe``); empty for exact."""
        if self._index_type == "exact":
            return {}
        return {"nlist": int(self._index.nlist), "nprobe": int(self._index.nprobe)}

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Add vectors under ``ids``, replacing those already present."""
        id_arr = _as_ids(ids)
        x = _normalized(vectors, self.dim)
        if len(x) != len(id_arr):
            raise ValueError(f"{len(id_arr)} ids for {len(x)} vectors")
        self.remove(id_arr)
        self._index.add_with_ids(x, id_arr)

    def remove(self, ids: npt.ArrayLike) -> int:
        """Remove ``ids`` (absent ones are ignored); return how many were removed."""
        id_arr = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(id_arr) == 0 or len(self) == 0:
            return 0
        return int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))

    def search(self, queries: npt.ArrayLike, k: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Return ``(scores, ids)`` of shape (nq, k), best first; missing hits have id -1."""
        if k < 1:
            raise ValueError("k must be >= 1")
        q = _normalized(queries, self.dim)
        scores, ids = self._index.search(q, k)
        return scores, ids

    def ids(self) -> npt.NDArray[np.int64]:
        """Return all ids in the index (unordered)."""
        if self._index_type == "exact":
            return faiss.vector_to_array(self._index.id_map).astype(np.int64, copy=False)
        invlists = self._index.invlists
        parts = [faiss.rev_swig_ptr(invlists.get_ids(i), invlists.list_size(i)).copy() for i in range(invlists.nlist) if invlists.list_size(i)]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def save(self, path: str | os.PathLike[str], metadata: dict[str, Any]) -> None:
        """Atomically write the index to ``path`` and ``metadata`` to its JSON sidecar.

        The index file is replaced first and the sidecar, which carries its
        sha256, last: a crash in between leaves a pair that fails to load.
        """
        path = Path(path)

        def write_index(sink: Callable[[bytes], None]) -> None:
            faiss.write_index(self._index, faiss.PyCallbackIOWriter(sink, _IO_CHUNK))

        digest = _atomic_write(path, write_index)
        sidecar = {
            "format": _SIDECAR_FORMAT,
            "index_type": self._index_type,
            "dim": self.dim,
            "count": len(self),
            "sha256": digest,
            "metadata": metadata,
        }
        payload = json.dumps(sidecar, indent=2, sort_keys=True).encode()
        _atomic_write(_sidecar_path(path), lambda sink: sink(payload))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> tuple[VectorIndex, dict[str, Any]]:
        """Read an index saved by :meth:`save`; return it and the caller's metadata."""
        path = Path(path)
        sidecar = cls._read_sidecar(_sidecar_path(path))
        try:
            with open(path, "rb") as f:
                # Verify before parsing: faiss trusts sizes in the file, so a
                # damaged one could make it allocate wildly. Reading both passes
                # from one open file means a concurrent save cannot slip between.
                if hashlib.file_digest(f, "sha256").hexdigest() != sidecar["sha256"]:
                    raise VectorIndexCorrupt(f"index file {path} does not match its sidecar")
                f.seek(0)
                index = faiss.read_index(faiss.PyCallbackIOReader(f.read, _IO_CHUNK))
        except FileNotFoundError as e:
            raise VectorIndexMissing(f"no index file at {path}") from e
        except RuntimeError as e:  # faiss reports unreadable input this way
            raise VectorIndexCorrupt(f"unreadable index file {path}: {e}") from e
        expected = faiss.IndexIDMap2 if sidecar["index_type"] == "exact" else faiss.IndexIVFFlat
        if not isinstance(index, expected) or index.d != sidecar["dim"] or index.ntotal != sidecar["count"]:
            raise VectorIndexCorrupt(f"index file {path} does not match its sidecar")
        return cls(index, sidecar["index_type"]), sidecar["metadata"]

    @staticmethod
    def _read_sidecar(path: Path) -> dict[str, Any]:
        try:
            sidecar = json.loads(path.read_bytes())
        except FileNotFoundError as e:
            raise VectorIndexMissing(f"no index sidecar at {path}") from e
        except (OSError, ValueError) as e:
            raise VectorIndexCorrupt(f"unreadable index sidecar {path}: {e}") from e
        if (
            not isinstance(sidecar, dict)
            or sidecar.get("format") != _SIDECAR_FORMAT
            or sidecar.get("index_type") not in ("exact", "ivf")
            or not isinstance(sidecar.get("sha256"), str)
            or not isinstance(sidecar.get("metadata"), dict)
            or not isinstance(sidecar.get("dim"), int)
            or not isinstance(sidecar.get("count"), int)
        ):
            raise VectorIndexCorrupt(f"invalid index sidecar {path}")
        return sidecar
