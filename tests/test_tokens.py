"""API tokens (issue 12): only a hash is stored, the secret is shown once, revoked and unknown secrets authenticate to nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from helpers import adapters, cli, one_line_error
from sqlalchemy import inspect, select, text, update

from store.db import alembic_config, make_engine, upgrade
from store.errors import StoreError
from store.models import TokenRow
from store.registry import Registry
from store.tokens import PREFIX, SCOPES, allows, hash_secret


@pytest.fixture
def registry(registry_url):
    """A fresh registry on each backend (the PostgreSQL leg skips when no server can start)."""
    opened = registry_url.open()
    yield opened
    opened.close()


def test_create_list_revoke_authenticate_round_trip(registry: Registry) -> None:
    tokens = registry.tokens
    ci, ci_secret = tokens.create("ci", "write")
    laptop, laptop_secret = tokens.create("  laptop ", "read")
    assert ci_secret.startswith(PREFIX) and len(ci_secret) > 40 and ci_secret != laptop_secret
    assert (ci.name, ci.scope, ci.revoked_at, ci.last_used_at) == ("ci", "write", None, None)
    assert laptop.name == "laptop", "names are stripped"
    assert ci.created_at.tzinfo is not None

    assert tokens.authenticate(ci_secret).name == "ci"
    assert tokens.authenticate(laptop_secret).scope == "read"
    listed = tokens.list()
    assert [t.name for t in listed] == ["ci", "laptop"] and listed[0].last_used_at is not None

    revoked = tokens.revoke("ci")
    assert revoked.revoked_at is not None and revoked.name == "ci"
    assert tokens.authenticate(ci_secret) is None
    assert tokens.authenticate(laptop_secret) is not None
    assert [(t.name, t.revoked_at is not None) for t in tokens.list()] == [("ci", True), ("laptop", False)], "revoked tokens stay listed"
    data = tokens.list()[0].to_json()
    assert data["revoked_at"] == tokens.list()[0].revoked_at.isoformat() and "secret" not in json.dumps(data)


def test_unknown_malformed_and_revoked_secrets_authenticate_to_none(registry: Registry) -> None:
    tokens = registry.tokens
    _record, secret = tokens.create("ci", "admin")
    for wrong in ("", "dhub_", secret[:-1], secret + "x", secret.upper(), "not a token", "dhub_\x00\ud800", "x" * 10_000, hash_secret(secret)):
        assert tokens.authenticate(wrong) is None, wrong
    assert tokens.authenticate(None) is None  # type: ignore[arg-type]
    tokens.revoke("ci")
    assert tokens.authenticate(secret) is None


def test_errors_are_one_line_and_never_carry_the_secret(registry: Registry) -> None:
    tokens = registry.tokens
    record, secret = tokens.create("ci", "read")
    assert secret not in repr(record) and secret not in str(record.to_json())
    cases = [
        (lambda: tokens.create("other", "owner"), "is not one of read, write, admin"),
        (lambda: tokens.create("   ", "read"), "needs a name"),
        (lambda: tokens.create("x" * 129, "read"), "longer than 128"),
        (lambda: tokens.create("ci", "admin"), "exists already"),
        (lambda: tokens.revoke("nobody"), "no token named 'nobody'"),
    ]
    for call, expected in cases:
        with pytest.raises(StoreError) as raised:
            call()
        message = str(raised.value)
        assert expected in message and "\n" not in message and secret not in message
    tokens.revoke("ci")
    with pytest.raises(StoreError, match="already revoked"):
        tokens.revoke("ci")
    with pytest.raises(StoreError, match="exists already"):
        tokens.create("ci", "read")
    assert [t.name for t in tokens.list()] == ["ci"], "failed creates leave nothing behind"


def test_last_used_is_written_at_most_once_a_minute(registry: Registry) -> None:
    tokens = registry.tokens
    record, secret = tokens.create("ci", "read")
    first = tokens.authenticate(secret).last_used_at
    assert first is not None and first >= record.created_at
    assert tokens.authenticate(secret).last_used_at == first == tokens.list()[0].last_used_at, "a second use within the minute writes nothing"
    earlier = datetime.now(UTC) - timedelta(minutes=2)
    with registry.engine.begin() as connection:
        connection.execute(update(TokenRow).where(TokenRow.id == record.id).values(last_used_at=earlier))
    again = tokens.authenticate(secret).last_used_at
    assert again > first and tokens.list()[0].last_used_at == again


def test_scopes_include_the_ones_before_them() -> None:
    assert SCOPES == ("read", "write", "admin")
    granted_needed = {(g, n): allows(g, n) for g in SCOPES for n in SCOPES}
    assert [pair for pair, ok in granted_needed.items() if ok] == [
        ("read", "read"),
        ("write", "read"),
        ("write", "write"),
        ("admin", "read"),
        ("admin", "write"),
        ("admin", "admin"),
    ]
    assert not allows("owner", "read") and not allows("admin", "owner") and not allows("", "")


def test_the_database_holds_the_hash_never_the_secret(registry_dir: Path) -> None:
    registry = Registry.open(registry_dir)
    try:
        _record, secret = registry.tokens.create("ci", "write")
        registry.tokens.authenticate(secret)
        with registry.engine.connect() as connection:
            stored = connection.execute(select(TokenRow.token_hash)).scalar_one()
    finally:
        registry.close()
    assert stored == hash_secret(secret) != secret and len(stored) == 64
    files = list(registry_dir.glob("registry.db*"))
    data = b"".join(path.read_bytes() for path in files)
    assert stored.encode() in data, files
    assert secret.encode() not in data and secret[len(PREFIX) :].encode() not in data


def test_migration_0007_adds_and_drops_only_the_tokens_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        upgrade(engine)
        assert "api_tokens" in inspect(engine).get_table_names()
        command.downgrade(alembic_config(engine), "0006")
        assert "api_tokens" not in inspect(engine).get_table_names() and "modules" in inspect(engine).get_table_names()
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0006"
        upgrade(engine)
        assert {c["name"] for c in inspect(engine).get_columns("api_tokens")} == {
            "id",
            "name",
            "scope",
            "token_hash",
            "created_at",
            "revoked_at",
            "last_used_at",
        }
    finally:
        engine.dispose()


def test_token_create_list_revoke_through_the_cli(registry_dir: Path) -> None:
    assert adapters(registry_dir, "db", "upgrade").exit_code == 0  # a token is made for a registry that exists
    created = adapters(registry_dir, "token", "create", "ci", "--scope", "write")
    assert created.exit_code == 0, created.output
    lines = created.output.splitlines()
    secret = lines[0].strip()
    assert secret.startswith(PREFIX) and created.output.count(secret) == 1, "the secret is printed exactly once"
    assert "will not be shown again" in created.output and "export ADAPTERS_TOKEN=" in created.output

    table = adapters(registry_dir, "token", "list")
    assert table.exit_code == 0, table.output
    assert "ci" in table.output and "write" in table.output and secret not in table.output
    listed = json.loads(adapters(registry_dir, "token", "list", "--json").output)
    assert [(t["name"], t["scope"], t["revoked_at"]) for t in listed] == [("ci", "write", None)]
    assert secret not in json.dumps(listed) and hash_secret(secret) not in json.dumps(listed)

    registry = Registry.open(registry_dir)
    try:
        assert registry.tokens.authenticate(secret).name == "ci"
    finally:
        registry.close()

    revoked = adapters(registry_dir, "token", "revoke", "ci")
    assert revoked.exit_code == 0 and "revoked token 'ci'" in revoked.output, revoked.output
    assert json.loads(adapters(registry_dir, "token", "list", "--json").output)[0]["revoked_at"] is not None
    assert "already revoked" in one_line_error(adapters(registry_dir, "token", "revoke", "ci"))
    assert "no token named 'nobody'" in one_line_error(adapters(registry_dir, "token", "revoke", "nobody"))
    assert "exists already" in one_line_error(adapters(registry_dir, "token", "create", "ci"))
    line = one_line_error(adapters(registry_dir, "token", "create", "root", "--scope", "owner"))
    assert "read, write, admin" in line
    assert [t["name"] for t in json.loads(adapters(registry_dir, "token", "list", "--json").output)] == ["ci"]


def test_token_verbs_work_on_both_backends(registry_url) -> None:
    assert cli("db", "upgrade", *registry_url.args()).exit_code == 0
    created = cli("token", "create", "ci", "--scope", "admin", *registry_url.args())
    assert created.exit_code == 0, created.output
    secret = created.output.splitlines()[0].strip()
    assert cli("token", "revoke", "ci", *registry_url.args()).exit_code == 0
    listed = cli("token", "list", "--json", *registry_url.args())
    assert listed.exit_code == 0 and secret not in listed.output, listed.output
    assert json.loads(listed.output)[0]["scope"] == "admin"
