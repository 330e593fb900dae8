"""The registry server (`adapters serve`) and its client: every verb through a URL, tokens and scopes, and the hard edges.

Each server is a real `adapters serve` process on a real registry (SQLite, and PostgreSQL behind it);
the client is the real CLI and `Hub` with `--registry http://…`.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch
from helpers import build_small_registry, make_tokens, one_line_error, random_module, runner, snapshot, start, stop, tiny

from cli.main import app
from hub import Hub, load_dataset
from store.errors import UploadTooLarge
from store.module_query import ModuleQuery
from store.records import TaskInfo
from store.registry import Registry


@dataclass
class Served:
    url: str
    registry: Path | str
    blobs: Path
    target: Path
    tokens: dict[str, str]
    log: Path
    process: subprocess.Popen

    def env(self, scope: str | None) -> dict[str, str | None]:
        return {"ADAPTERS_TOKEN": self.tokens[scope] if scope else None, "ADAPTERS_REGISTRY": None, "ADAPTERS_BLOBS": None}

    def http(self, scope: str | None = "admin") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url + "/api/v1", headers=headers, timeout=30)


@pytest.fixture(scope="module")
def served(suite: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server (tokens required) over the small transfer registry: four sources, the target's own module, the tiny target."""
    root = tmp_path_factory.mktemp("served")
    registry, target = build_small_registry(suite, root)
    opened = Registry.open(registry)
    try:
        tokens = make_tokens(opened)
    finally:
        opened.close()
    log = root / "server.log"
    url, process = start(registry, log)
    yield Served(url, registry, registry / "blobs", target, tokens, log, process)
    stop(process)


def module_folder(tmp_path: Path, seed: int) -> Path:
    """A LoRA module folder of new random weights, as save_pretrained writes it."""
    with Hub(tmp_path / "scratch") as hub:
        module, tensors = random_module(hub, seed)
        module.method.set_tensors(module.model, tensors)
        return module.save(tmp_path / f"module-{seed}")


def cli(served: Served, scope: str | None, *args: str):
    return runner.invoke(app, [*args, "--registry", served.url], env=served.env(scope))


def test_every_verb_works_through_the_server_url(served: Served, tmp_path: Path):
    listed = cli(served, "read", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert "wn-isa-plant" in listed.output and "wn-isa-animal" in listed.output

    shown = cli(served, "read", "show", "1")
    assert shown.exit_code == 0 and "wn-isa-plant" in shown.output, shown.output

    found = cli(served, "read", "search", str(served.target), "--top-k", "2")
    assert found.exit_code == 0, found.output
    assert "wn-isa-animal" in found.output  # its own dataset is the nearest

    pushed = cli(served, "write", "push", str(module_folder(tmp_path, 11)), "--dataset", str(served.target), "--json")
    assert pushed.exit_code == 0, pushed.output
    with Hub(served.registry) as local:  # the server's own registry, read directly
        new = max(local.list(), key=lambda record: record.id)
        assert new.task == "wn-isa-animal" and new.created_host == socket.gethostname()

    composed = cli(served, "write", "ensemble", str(served.target), "--strategy", "average")
    assert composed.exit_code == 0, composed.output
    with Hub(served.registry) as local:
        init = max(local.list(), key=lambda record: record.id)
    assert init.origin == "ensemble" and init.provenance is not None and init.provenance.strategy == "average"
    assert len(init.provenance.sources) >= 4

    exported = cli(served, "read", "export", str(init.id), str(tmp_path / "export"))
    assert exported.exit_code == 0, exported.output
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= {path.name for path in (tmp_path / "export").iterdir()}

    trained = cli(served, "write", "train", str(served.target), "--init", str(init.id), "--max-steps", "2", "--epochs", "1", "--push")
    assert trained.exit_code == 0, trained.output
    with Hub(served.registry) as local:
        last = max(local.list(), key=lambda record: record.id)
    assert last.origin == "trained" and last.provenance is not None and last.provenance.sources[0].module_id == init.id

    refused = cli(served, "write", "rm", str(last.id))
    assert "scope admin" in one_line_error(refused) or "needs admin" in one_line_error(refused)
    removed = cli(served, "admin", "rm", str(last.id))
    assert removed.exit_code == 0, removed.output
    gone = cli(served, "read", "show", str(last.id))
    assert f"no module with id {last.id}" in one_line_error(gone)


def test_hub_in_python_takes_the_url_and_the_token(served: Served, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ADAPTERS_TOKEN", served.tokens["read"])
    with Hub(served.url) as hub, Hub(served.registry) as local:
        assert [record.to_json() for record in hub.list()] == [record.to_json() for record in local.list()]
        # A long id list goes in several requests (URL length); the answer is the same.
        many = list(range(1, 1001))
        assert [r.id for r in hub.registry.catalog.list_modules(ModuleQuery(ids=many, method="lora"))] == [
            r.id for r in local.registry.catalog.list_modules(ModuleQuery(ids=many))
        ]
        remote_hits = [(hit.module.id, round(hit.similarity, 5)) for hit in hub.search(module=1, top_k=3)]
        local_hits = [(hit.module.id, round(hit.similarity, 5)) for hit in local.search(module=1, top_k=3)]
        assert remote_hits == local_hits
        record = hub.show(2)
        assert {name: tensor.tolist() for name, tensor in hub.load_tensors(record).items()} == {
            name: tensor.tolist() for name, tensor in local.load_tensors(record).items()
        }


@pytest.mark.parametrize(
    ("scope", "verb", "expected"),
    [
        (None, ("list",), "needs a token of scope read"),
        ("read", ("rm", "1"), "has scope read; this needs admin: ask an admin for a token of scope admin"),
        ("write", ("token", "list"), "has scope write; this needs admin: ask an admin for a token of scope admin"),
    ],
)
def test_a_missing_or_small_token_is_one_line_naming_the_scope(served: Served, scope, verb, expected):
    before = snapshot(Path(served.registry))
    args = [*verb[:2], "--registry", served.url, *verb[2:]] if verb[0] == "token" else [*verb, "--registry", served.url]
    result = runner.invoke(app, args, env=served.env(scope))
    line = one_line_error(result)
    assert expected in line
    assert all(secret not in result.output for secret in served.tokens.values())
    assert snapshot(Path(served.registry)) == before


def test_a_read_token_cannot_push_and_nothing_is_written(served: Served, tmp_path: Path):
    before = snapshot(Path(served.registry))
    result = cli(served, "read", "push", str(module_folder(tmp_path, 12)), "--dataset", str(served.target))
    assert "this needs write" in one_line_error(result)
    assert snapshot(Path(served.registry)) == before


def test_tokens_are_managed_through_the_server_and_a_revoked_one_stops_at_once(served: Served):
    created = runner.invoke(app, ["token", "create", "ci-bot", "--scope", "read", "--registry", served.url], env=served.env("admin"))
    assert created.exit_code == 0, created.output
    secret = created.output.splitlines()[0].strip()
    with httpx.Client(base_url=served.url + "/api/v1", headers={"Authorization": f"Bearer {secret}"}) as bot:
        assert bot.get("/modules").status_code == 200
        revoked = runner.invoke(app, ["token", "revoke", "ci-bot", "--registry", served.url], env=served.env("admin"))
        assert revoked.exit_code == 0, revoked.output
        answer = bot.get("/modules")
        assert answer.status_code == 401 and "unknown or revoked" in answer.json()["detail"]
    listed = runner.invoke(app, ["token", "list", "--json", "--registry", served.url], env=served.env("admin"))
    assert "ci-bot" in listed.output and secret not in listed.output
    # Neither the server's log nor any answer carried a secret.
    log = served.log.read_text()
    assert "/api/v1/modules" in log
    assert all(token not in log for token in [*served.tokens.values(), secret])


def test_uploads_that_do_not_match_their_digest_are_refused_and_nothing_is_written(served: Served):
    data = b"not the declared bytes"
    declared = hashlib.sha256(b"other bytes").hexdigest()
    with served.http("write") as client:
        answer = client.put(f"/blobs/{declared}", content=data)
        assert answer.status_code == 422 and "nothing was stored" in answer.json()["detail"]
        assert client.get(f"/blobs/{declared}").status_code == 404
    shard = Path(served.blobs) / "sha256" / declared[:2]
    assert not (shard / f"{declared}.safetensors").exists()
    assert not list(shard.glob(".tmp-*")) if shard.exists() else True


def test_a_record_without_its_uploaded_blob_or_malformed_is_refused(served: Served):
    with served.http("write") as client:
        record = client.get("/modules/1").json()
        payload = {
            "module": {**{key: record[key] for key in ("method", "config", "tensor_schema", "schema_hash", "num_params")}, "blob_digest": "ab" * 32},
            "task": {"name": "t", "category": "c", "format": "pair"},
            "dataset": None,
            "base_model": {"name": record["base_model"], "family": record["base_model_family"], "arch_hash": record["base_arch_hash"], "revision": ""},
            "provenance": None,
        }
        payload["module"].update(param_embedding=[0.5] * 512, metrics={}, tags=[], origin="trained", created_by="x", created_host="h", source="")
        missing = client.post("/modules", json=payload)
        assert missing.status_code == 400 and "upload the module's bytes" in missing.json()["detail"]
        # A digest that is not 64 hex digits never names a file: it would be a path under the blob store.
        payload["module"]["blob_digest"] = "../../../../../../tmp/x"
        traversal = client.post("/modules", json=payload)
        assert traversal.status_code == 400 and "sha256 hex digests" in traversal.json()["detail"]
        # Embeddings that do not fit the registry's indexes are refused before the row is written.
        record_one = client.get("/modules/1").json()
        payload["module"].update(blob_digest=record_one["blob_digest"], schema_hash=record_one["schema_hash"], param_embedding=[0.5] * 8)
        misfit = client.post("/modules", json=payload)
        assert misfit.status_code == 400 and "parameter vectors have 512 values; nothing was registered" in misfit.json()["detail"]
        wrong = client.post("/search/datasets", json={"vector": [0.1] * 7, "k": 3})
        assert wrong.status_code == 400 and "this index holds vectors of 384 finite values" in wrong.json()["detail"]
        malformed = client.post("/modules", json={"module": {}})
        assert malformed.status_code == 400 and malformed.json()["detail"].startswith("malformed module record")


@pytest.mark.parametrize(
    "path",
    [
        "/blobs/..%2F..%2Fregistry.db",
        "/blobs/" + "a" * 63 + "%2F",
        "/blobs/../../registry.db",
        "/modules/0",
        "/modules/abc",
        "/datasets/..%2Fx/embedding",
        "/modules?ids=1;DROP",
    ],
)
def test_ids_and_paths_are_validated(served: Served, path: str):
    with served.http("admin") as client:
        answer = client.get(path, follow_redirects=True)
    assert answer.status_code in (404, 422), (path, answer.status_code, answer.text)
    assert b"SQLite format" not in answer.content


def test_json_bodies_over_the_limit_are_refused_before_they_are_read_and_before_the_token(served: Served):
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"POST /api/v1/modules HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000000\r\n\r\n{")
        raw.settimeout(10)
        answer = b""
        while b"}" not in answer:  # the JSON body may come in a later packet than the headers
            chunk = raw.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"for anything but a blob upload" in answer


def test_a_token_with_characters_no_token_has_is_refused_without_echoing_it(served: Served):
    result = runner.invoke(app, ["list", "--registry", served.url], env={**served.env(None), "ADAPTERS_TOKEN": "dhub_sek\trit"})
    line = one_line_error(result)
    assert "ADAPTERS_TOKEN holds characters a token never has" in line and "sekrit" not in result.output
    shown = cli(served, "read", "show", "0")
    assert "no module with id 0" in one_line_error(shown)


def test_a_client_that_disconnects_mid_upload_leaves_no_blob_and_the_server_goes_on(served: Served):
    digest = hashlib.sha256(b"x" * 4_000_000).hexdigest()
    port = int(served.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as raw:
        head = f"PUT /api/v1/blobs/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {served.tokens['write']}\r\nContent-Length: 4000000\r\n\r\n"
        raw.sendall(head.encode() + b"x" * 1_000_000)
        time.sleep(0.5)
    shard = Path(served.blobs) / "sha256" / digest[:2]
    deadline = time.monotonic() + 10
    while shard.exists() and list(shard.glob(".tmp-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (shard / f"{digest}.safetensors").exists()
    assert not shard.exists() or not list(shard.glob(".tmp-*"))
    with served.http("read") as client:
        assert client.get("/info").status_code == 200
        assert client.get("/modules").status_code == 200


def test_uploads_over_the_limit_are_refused_before_they_are_read(tmp_path: Path):
    registry = tmp_path / "registry"
    Hub.upgrade(registry)
    opened = Registry.open(registry)
    tokens = make_tokens(opened)
    opened.close()
    url, process = start(registry, tmp_path / "server.log", "--max-upload", "64K", "--public-read")
    try:
        big = b"y" * 200_000
        digest = hashlib.sha256(big).hexdigest()
        with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {tokens['write']}"}) as client:
            declared = client.put(f"/blobs/{digest}", content=big)
            assert declared.status_code == 413 and "limit of 65536 bytes" in declared.json()["detail"]
            # No Content-Length (chunked): counted as it arrives and cut off at the limit.
            streamed = client.put(f"/blobs/{digest}", content=iter([big[i : i + 16384] for i in range(0, len(big), 16384)]))
            assert streamed.status_code == 413
            assert client.get("/info").json()["public_read"] is True
            assert client.get("/modules").status_code == 200
        # The client knows the limit too: a module too big is refused before its bytes are sent.
        os.environ["ADAPTERS_TOKEN"] = tokens["write"]
        try:
            with Hub(url) as hub:
                module, tensors = random_module(hub, 21)
                with pytest.raises(UploadTooLarge, match="over the server's upload limit of 65536"):
                    hub.register(module.method, module.config, tensors, TaskInfo("t", "c", "pair"), module.backbone)
        finally:
            del os.environ["ADAPTERS_TOKEN"]
        anonymous = httpx.put(f"{url}/api/v1/blobs/{digest}", content=b"z")
        assert anonymous.status_code == 401  # public reads, not public writes
        assert not any(path.is_file() for path in (registry / "blobs" / "sha256").rglob("*")) if (registry / "blobs" / "sha256").exists() else True
        cors = httpx.get(f"{url}/api/v1/info", headers={"Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in cors.headers  # CORS is off unless --cors-origin
        spec = httpx.get(f"{url}/openapi.json").json()
        assert {"/api/v1/modules", "/api/v1/modules/{module_id}", "/api/v1/blobs/{digest}", "/api/v1/search/datasets", "/api/v1/tokens"} <= set(spec["paths"])
    finally:
        stop(process)


def test_a_server_url_is_refused_where_the_files_are_needed(served: Served):
    for verb in (("gc",), ("verify",)):
        result = cli(served, "admin", *verb)
        assert "run it on the server's machine" in one_line_error(result)
    result = runner.invoke(app, ["db", "upgrade", "--registry", served.url], env=served.env("admin"))
    assert "run this on the server's machine" in one_line_error(result)
    result = runner.invoke(app, ["serve", "--registry", served.url], env=served.env("admin"))
    assert "fronts a registry directory or database URL, not another server's URL" in one_line_error(result)
    result = runner.invoke(app, ["list", "--registry", "http://127.0.0.1:9"], env=served.env("read"))
    assert "cannot reach the registry server http://127.0.0.1:9" in one_line_error(result)


def test_a_postgresql_registry_behind_the_server(suite: Path, tmp_path: Path, request: pytest.FixtureRequest):
    server = request.getfixturevalue("postgres_server")
    url, blobs = server.create_database(), tmp_path / "blobs"
    blobs.mkdir()
    Hub.upgrade(url, blobs)
    opened = Registry.open(url, blobs)
    tokens = make_tokens(opened)
    opened.close()
    address, process = start(url, tmp_path / "server.log", blobs=blobs)
    try:
        data = tmp_path / "data"
        with Hub(tmp_path / "scratch") as scratch:
            module, tensors = random_module(scratch, 5)
        os.environ["ADAPTERS_TOKEN"] = tokens["write"]
        try:
            with Hub(address) as hub:
                target = load_dataset(tiny(suite, "wn-isa-animal", data))
                record = hub.register(module.method, module.config, tensors, target, module.backbone)
                again = hub.register(module.method, module.config, {k: v.clone() for k, v in tensors.items()}, target, module.backbone)
                assert again.id == record.id  # pushing the same weights again is the same module
                assert [hit.module.id for hit in hub.search(target, top_k=1)] == [record.id]
        finally:
            del os.environ["ADAPTERS_TOKEN"]
        with Hub(url, blobs) as local:
            assert [(r.id, r.blob_digest) for r in local.list()] == [(record.id, record.blob_digest)]
            assert local.verify().healthy
            assert torch.equal(local.load_tensors(record)[next(iter(tensors))], tensors[next(iter(tensors))])
    finally:
        stop(process)


def test_reads_through_the_server_change_no_module_row_or_blob(served: Served):
    """Reads through the server write nothing to the catalog (a read token's last-use time aside)."""
    before = snapshot(Path(served.registry))
    with served.http("read") as client:
        for path in ("/modules", "/modules/1", "/modules/1/export"):
            assert client.get(path).status_code == 200
    assert snapshot(Path(served.registry)) == before


def test_the_export_zip_is_streamed_from_a_file_with_its_length(served: Served):
    """The export is zipped to a scratch file and sent from it (a declared length, not a body built in memory)."""
    with served.http("read") as client:
        response = client.get("/modules/1/export")
    assert response.status_code == 200 and int(response.headers["content-length"]) == len(response.content)
    assert 'filename="module-1.zip"' in response.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert {"module-1/adapter_config.json", "module-1/adapter_model.safetensors", "module-1/README.md"} <= set(names)
