"""API tokens of the registry server: named secrets with a scope, of which only a sha256 is stored.

The secret is handed out once, by `TokenStore.create`; afterwards the registry can check a secret
(`authenticate`) but never show one again. Tokens are not modules: writing them leaves the catalog
generation (and so every index cache) alone.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from store.db import WRITE_OPTION, database_errors
from store.errors import DatabaseBusy, StoreError
from store.models import TokenRow, utcnow

__all__ = ["SCOPES", "TokenRecord", "TokenStore", "allows"]

# Each scope includes the ones before it: a write token may read, an admin token may do anything.
SCOPES = ("read", "write", "admin")
PREFIX = "dhub_"
NAME_LENGTH = 128
# last_used_at is a hint for people (is this token still in use?), not an audit log: one write a minute per token is enough.
TOUCH_INTERVAL = timedelta(minutes=1)


def allows(granted: str, needed: str) -> bool:
    """Whether a token of scope `granted` may do what needs scope `needed` (an unknown scope allows nothing)."""
    if granted not in SCOPES or needed not in SCOPES:
        return False
    return SCOPES.index(granted) >= SCOPES.index(needed)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: sha256, hex. Secrets are 256 random bits, so no salt or slow hash is needed."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class TokenRecord:
    """A token as the registry knows it; there is deliberately no secret field, so no repr or log line can carry one."""

    id: int
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


class TokenStore:
    """The registry's API tokens, in the catalog database (table api_tokens)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reads = sessionmaker(engine, expire_on_commit=False)
        # A write takes SQLite's write lock up front (BEGIN IMMEDIATE), as the catalog's writes do.
        self._writes = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False)

    @contextmanager
    def _session(self, write: bool = False) -> Iterator[Session]:
        with database_errors(self.engine), (self._writes if write else self._reads).begin() as session:
            yield session

    def create(self, name: str, scope: str) -> tuple[TokenRecord, str]:
        """Make a token; return it and its secret, which is shown this once (only its sha256 is stored)."""
        name = _check_name(name)
        if scope not in SCOPES:
            raise StoreError(f"token scope {scope!r} is not one of {', '.join(SCOPES)}; choose one of them")
        secret = PREFIX + secrets.token_urlsafe(32)
        try:
            with self._session(write=True) as session:
                if session.scalar(select(TokenRow.id).where(TokenRow.name == name)) is not None:
                    raise _duplicate(name)
                row = TokenRow(name=name, scope=scope, token_hash=hash_secret(secret), created_at=utcnow())
                session.add(row)
                session.flush()
                record = _record(row)
        except IntegrityError:
            # A concurrent create of the same name won the race (the hash is 256 random bits: never the cause).
            raise _duplicate(name) from None
        return record, secret

    def list(self) -> list[TokenRecord]:
        """Every token by id, revoked ones included (their revoked_at is set)."""
        with self._session() as session:
            return [_record(row) for row in session.scalars(select(TokenRow).order_by(TokenRow.id))]

    def revoke(self, name: str) -> TokenRecord:
        """Stop a token from authenticating; its row stays, so the list shows when it was revoked."""
        name = name.strip()
        with self._session(write=True) as session:
            # FOR UPDATE: two concurrent revokes of one token on PostgreSQL cannot both succeed (SQLite's write lock does the same).
            row = session.scalar(select(TokenRow).where(TokenRow.name == name).with_for_update())
            if row is None:
                raise StoreError(f"no token named {name!r}; revoked tokens are listed too, so check the name")
            if row.revoked_at is not None:
                raise StoreError(f"token {name!r} was already revoked at {_aware(row.revoked_at):%Y-%m-%d %H:%M} UTC; nothing changed")
            row.revoked_at = utcnow()
            return _record(row)

    def authenticate(self, secret: str) -> TokenRecord | None:
        """The live token with this secret, or None (unknown, malformed or revoked).

        The secret is looked up by its hash, so the work done does not depend on how much of a
        real secret it shares (no timing hint), and the secret itself never reaches the database.
        """
        if not isinstance(secret, str):
            return None
        digest = hash_secret(secret)
        with self._session() as session:
            row = session.scalar(select(TokenRow).where(TokenRow.token_hash == digest))
            if row is None or row.revoked_at is not None:
                return None
            record = _record(row)
        now = utcnow()
        if record.last_used_at is None or now - record.last_used_at >= TOUCH_INTERVAL:
            record = self._touch(record, now)
        return record

    def _touch(self, record: TokenRecord, now: datetime) -> TokenRecord:
        """Record a use; the condition keeps concurrent requests from writing more than once a minute between them."""
        cutoff = now - TOUCH_INTERVAL
        try:
            with self._session(write=True) as session:
                session.execute(
                    update(TokenRow)
                    .where(TokenRow.id == record.id, or_(TokenRow.last_used_at.is_(None), TokenRow.last_used_at <= cutoff))
                    .values(last_used_at=now)
                )
        except DatabaseBusy:
            # A hint not written is no reason to refuse a valid token.
            return record
        return TokenRecord(record.id, record.name, record.scope, record.created_at, record.revoked_at, now)


def _check_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise StoreError("a token needs a name, e.g. the machine or person that will use it")
    if len(name) > NAME_LENGTH:
        raise StoreError(f"token name {name[:20]!r}… is longer than {NAME_LENGTH} characters; choose a shorter one")
    return name


def _duplicate(name: str) -> StoreError:
    return StoreError(f"a token named {name!r} exists already (a revoked token keeps its name); choose another name")


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every stored one is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _record(row: TokenRow) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        scope=row.scope,
        created_at=_aware(row.created_at),
        revoked_at=_aware(row.revoked_at) if row.revoked_at is not None else None,
        last_used_at=_aware(row.last_used_at) if row.last_used_at is not None else None,
    )
