"""Shared fixtures: real registries on disk, the packaged MiniLM, the shipped WordNet suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Rich reads the width once; a wide one keeps table cells whole for the assertions.
os.environ["COLUMNS"] = "200"

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "wordnet"


@pytest.fixture(scope="session")
def suite() -> Path:
    return SUITE


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    """A fresh embedded (SQLite) registry directory."""
    return tmp_path / "registry"


@pytest.fixture(scope="session")
def session_hub(tmp_path_factory: pytest.TempPathFactory):
    """One Hub for the whole session: loading MiniLM and the encoder once keeps the suite fast."""
    from hub import Hub

    hub = Hub(tmp_path_factory.mktemp("session") / "registry")
    yield hub
    hub.close()


@pytest.fixture(scope="session")
def trained_folders(session_hub, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real LoRA modules on MiniLM, briefly trained on three WordNet tasks, saved as PEFT folders."""
    from hub.training import TrainConfig

    out = tmp_path_factory.mktemp("modules")
    folders = {}
    for seed, task in enumerate(("wn-supersense-noun-a", "wn-supersense-noun-b", "wn-isa-animal")):
        module = session_hub.new_module("minilm", "lora", {"r": 4})
        session_hub.train(module, SUITE / task, TrainConfig(epochs=1, max_steps=4, batch_size=4, seed=seed, progress=False))
        folders[task] = module.save(out / task)
    return folders


# --- Shared registry: every registry test can run on SQLite and on PostgreSQL ---------------


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server (tests/pg.py) for the session; skips, saying why, when none can start."""
    from pg import start_server

    try:
        server = start_server()
    except RuntimeError as error:
        pytest.skip(f"PostgreSQL leg skipped: {error}")
    yield server
    server.stop()


class RegistrySpec:
    """Where a test registry lives: `url` (a directory for SQLite, a URL for PostgreSQL) and `blobs`."""

    def __init__(self, backend: str, url: str, blobs: Path | None) -> None:
        self.backend = backend
        self.url = url
        self.blobs = blobs

    def args(self) -> list[str]:
        """The CLI options that name this registry."""
        return ["--registry", self.url] + (["--blobs", str(self.blobs)] if self.blobs else [])

    def open(self):
        from store.registry import Registry

        return Registry.open(self.url, self.blobs)

    def __repr__(self) -> str:
        return f"RegistrySpec({self.backend})"


def make_registry_spec(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> RegistrySpec:
    if backend == "sqlite":
        return RegistrySpec("sqlite", str(tmp_path / "registry"), None)
    server = request.getfixturevalue("postgres_server")
    blobs = tmp_path / "blobs"
    blobs.mkdir(parents=True)
    return RegistrySpec("postgresql", server.create_database(), blobs)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> RegistrySpec:
    """A fresh, empty registry on each backend (the PostgreSQL leg skips when no server can start)."""
    return make_registry_spec(request.param, tmp_path, request)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine a second thread spins rather than helps."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- Blobs on object storage: a real S3-protocol server (tests/s3.py) -------------------------


@pytest.fixture(scope="session")
def s3_server():
    """moto's standalone S3 server, a separate process on a loopback port, for the session."""
    from s3 import start_server

    try:
        server = start_server()
    except RuntimeError as error:
        pytest.skip(f"object-storage tests skipped: {error}")
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server, monkeypatch: pytest.MonkeyPatch) -> str:
    """s3://BUCKET/PREFIX of a fresh bucket, with this process's AWS settings pointing at the test server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.create_bucket()}/lab"
