"""The shared lab registry on both backends: schema, basic writes, and every bad input as one line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import synthetic
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import cli, one_line_error
from sqlalchemy import event, text

from store.db import make_engine, upgrade
from store.errors import StoreError
from store.models import Base


def database_url(spec) -> str:
    return spec.url if spec.backend == "postgresql" else f"sqlite:///{Path(spec.url) / 'registry.db'}"


def test_migrations_make_exactly_the_declared_schema_on_both_backends(registry_url) -> None:
    if registry_url.backend == "sqlite":
        Path(registry_url.url).mkdir(parents=True)
    engine = make_engine(database_url(registry_url))
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_push_remove_and_reopen_on_both_backends(registry_url) -> None:
    registry = registry_url.open()
    try:
        first, created = synthetic.push(registry, 1, tags=("b", "a", "b"))
        again, created_again = synthetic.push(registry, 1)
        assert created and not created_again and again.id == first.id and again.tags == ("a", "b")
        second, _ = synthetic.push(registry, 2, provenance=synthetic.provenance([(first.id, first.blob_digest)]))
        assert registry.catalog.get_module(second.id).provenance.sources[0].digest == first.blob_digest
        registry.remove_module(first.id)
        # The source's digest survives its removal; its blob stays until gc.
        assert registry.catalog.get_module(second.id).provenance.sources[0].digest == first.blob_digest
        assert registry.blobs.exists(first.blob_digest)
    finally:
        registry.close()
    reopened = registry_url.open()
    try:
        assert [m.id for m in reopened.catalog.list_modules()] == [second.id]
        _d, new, _t, _ds = synthetic.module(2)
        assert reopened.indexes.search_parameters(new.schema_hash, new.param_embedding, 5) == [(second.id, pytest.approx(1.0, abs=1e-5))]
    finally:
        reopened.close()


def test_list_and_show_give_the_same_records_in_a_fixed_number_of_queries(registry_url) -> None:
    registry = registry_url.open()
    statements: list[str] = []
    try:
        sources = [synthetic.push(registry, seed)[0] for seed in range(3)]
        weights = synthetic.provenance([(s.id, s.blob_digest) for s in sources])
        synthetic.push(registry, 10, provenance=weights)
        event.listen(registry.engine, "before_cursor_execute", lambda _c, _cur, statement, *_a: statements.append(statement))
        few = registry.catalog.list_modules()
        per_list = len(statements)
        for seed in (11, 12, 13):
            synthetic.push(registry, seed, provenance=weights)
        statements.clear()
        listed = registry.catalog.list_modules()
        assert len(statements) == per_list < len(listed), "listing costs the same few queries however many modules (no query per module)"
        assert len(few) == 4 and listed == [registry.catalog.get_module(m.id) for m in listed]
        assert [m.provenance is not None for m in listed] == [False] * 3 + [True] * 4
        assert listed[3].provenance == dataclasses.replace(weights, target_fingerprint=synthetic.module(10)[3].fingerprint)
    finally:
        registry.close()
    # The CLI shows the same: a listed module is what `show` says about it.
    shown = json.loads(cli("show", str(listed[3].id), "--json", *registry_url.args()).output)
    assert json.loads(cli("list", "--json", *registry_url.args()).output)[3] == shown
    assert [s["module_id"] for s in shown["provenance"]["sources"]] == [s.id for s in sources]


def test_cli_lists_a_postgresql_registry_via_the_environment(registry_url, monkeypatch) -> None:
    registry = registry_url.open()
    synthetic.push(registry, 5)
    registry.close()
    monkeypatch.setenv("ADAPTERS_REGISTRY", registry_url.url)
    if registry_url.blobs:
        monkeypatch.setenv("ADAPTERS_BLOBS", str(registry_url.blobs))
    result = cli("list", "--json")
    assert result.exit_code == 0, result.output
    assert "synthetic-5" in result.output


# --- Bad input: one line, non-zero exit, nothing half-written ---------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_database_names_host_port_and_reason_never_the_password(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"postgresql+psycopg://lab:hunter2-secret@127.0.0.1:{port}/registry"
    line = one_line_error(cli("list", "--registry", url, "--blobs", str(tmp_path)))
    assert f"127.0.0.1:{port}" in line and "refused" in line.lower()
    assert "hunter2-secret" not in line and "***" in line


def test_wrong_credentials_say_so_without_the_password(registry_url) -> None:
    if registry_url.backend != "postgresql":
        pytest.skip("credentials only exist on the PostgreSQL leg")
    from sqlalchemy.engine import make_url

    url = make_url(registry_url.url).set(password="not-the-password").render_as_string(hide_password=False)
    line = one_line_error(cli("list", "--registry", url, "--blobs", str(registry_url.blobs)))
    assert "password authentication failed" in line and "not-the-password" not in line


def test_missing_blob_directory_is_refused(registry_url, tmp_path: Path) -> None:
    registry_url.open().close()
    if registry_url.backend == "sqlite":
        shutil.rmtree(Path(registry_url.url) / "blobs")
        args = ["--registry", registry_url.url]
    else:
        args = ["--registry", registry_url.url, "--blobs", str(tmp_path / "not-mounted")]
    line = one_line_error(cli("list", *args))
    assert "blob directory" in line and "does not exist" in line
    assert not (tmp_path / "not-mounted").exists(), "a missing shared blob directory is never created behind the user's back"


def test_read_only_blob_directory_is_refused(registry_url) -> None:
    registry = registry_url.open()
    synthetic.push(registry, 7)
    blobs = registry.blobs.root
    registry.close()
    if os.geteuid() == 0:
        # Root ignores permission bits; the immutable attribute stops even root from writing.
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(blobs)], capture_output=True).returncode != 0:
            pytest.skip("running as root where chattr +i is unavailable: cannot make a directory read-only")
        undo = ["chattr", "-i", str(blobs)]
    else:
        blobs.chmod(0o555)
        undo = ["chmod", "755", str(blobs)]
    try:
        line = one_line_error(cli("list", *registry_url.args()))
    finally:
        subprocess.run(undo, check=True)
    assert "not writable" in line and str(blobs) in line


def test_schema_ahead_of_the_code_is_refused(registry_url) -> None:
    registry = registry_url.open()
    with registry.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    registry.close()
    for command in (["list"], ["db", "upgrade"]):
        line = one_line_error(cli(*command, *registry_url.args()))
        assert "9999" in line and "newer than this deltahub" in line


def test_mixed_up_blob_directories_are_refused_and_mismatched_blobs_named(registry_url, tmp_path: Path, request) -> None:
    from conftest import make_registry_spec

    other = make_registry_spec(registry_url.backend, tmp_path / "other", request)
    mine, theirs = registry_url.open(), other.open()
    record, _ = synthetic.push(mine, 8)
    synthetic.push(theirs, 9)
    their_blobs = theirs.blobs.root
    my_blobs = mine.blobs.root
    mine.close()
    theirs.close()
    # Opening a registry with another registry's blob directory: refused, both ids named.
    if registry_url.backend == "postgresql":
        line = one_line_error(cli("list", "--registry", registry_url.url, "--blobs", str(their_blobs)))
    else:
        line = one_line_error(cli("list", "--registry", f"sqlite:///{Path(registry_url.url) / 'registry.db'}", "--blobs", str(their_blobs)))
    assert "belongs to registry" in line
    # A blob copied in under the wrong name (bytes from elsewhere): verify names the digest mismatch.
    path = my_blobs / "sha256" / record.blob_digest[:2] / f"{record.blob_digest}.safetensors"
    path.write_bytes(synthetic.canonical_bytes(synthetic.lora_tensors(9)))
    result = cli("verify", *registry_url.args())
    assert result.exit_code == 1
    assert "digest mismatch" in result.output and record.blob_digest in result.output


def test_a_zero_embedding_is_refused_before_anything_is_written(registry_url) -> None:
    registry = registry_url.open()
    try:
        data, new, task, dataset = synthetic.module(3)
        with pytest.raises(StoreError, match="parameter embedding is zero or not finite"):
            registry.add_module(data, dataclasses.replace(new, param_embedding=np.zeros_like(new.param_embedding)), task, dataset, synthetic.BASE)
        assert registry.catalog.list_modules() == [] and not registry.blobs.exists(new.blob_digest)
    finally:
        registry.close()


def test_malformed_url_is_one_line() -> None:
    line = one_line_error(cli("list", "--registry", "postgresql+psycopg://u:pw@host:notaport/db", "--blobs", "/tmp"))
    assert "pw" not in line.replace("psycopg", "")
