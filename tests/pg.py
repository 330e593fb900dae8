"""A throwaway PostgreSQL server for the shared-registry tests and benchmarks.

The server runs from Debian's binaries (/usr/lib/postgresql/*/bin) in a temp
directory, on a free local TCP port, with password authentication for TCP and a
private unix socket. initdb refuses to run as root, so as root the server runs
as the `postgres` user (or `nobody`) via runuser. `find_binaries()` returning
None (or the start failing) is the reason the PostgreSQL leg is skipped.

Set DELTAHUB_TEST_POSTGRES_URL to a superuser URL of an existing server to use
it instead (each test still gets a fresh database).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

USER = "deltahub"
PASSWORD = "s3cret-test-pw"
ENV_URL = "DELTAHUB_TEST_POSTGRES_URL"


def find_binaries() -> Path | None:
    """The newest PostgreSQL bin directory with initdb, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


@dataclass
class PostgresServer:
    """A running server; `url(db)` is a psycopg URL with the test user's password."""

    port: int
    host: str = "127.0.0.1"
    directory: Path | None = None
    bindir: Path | None = None
    user: str | None = None
    admin_url: str | None = None
    databases: list[str] = field(default_factory=list)

    def url(self, database: str, password: str = PASSWORD, user: str = USER) -> str:
        if self.admin_url is not None:
            from sqlalchemy.engine import make_url

            return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)
        return f"postgresql+psycopg://{user}:{password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._conninfo("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def _conninfo(self, database: str) -> str:
        return self.url(database).replace("postgresql+psycopg://", "postgresql://")

    def stop(self) -> None:
        if self.directory is None or self.bindir is None:
            return
        _as(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)


def _as(user: str | None, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)


def start_server() -> PostgresServer:
    """Start a throwaway server; raises RuntimeError with the reason when it cannot."""
    if os.environ.get(ENV_URL):
        from sqlalchemy.engine import make_url

        url = make_url(os.environ[ENV_URL])
        return PostgresServer(port=url.port or 5432, host=url.host or "127.0.0.1", admin_url=os.environ[ENV_URL])
    bindir = find_binaries()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb) found; install the Debian package `postgresql` or set " + ENV_URL)
    user = _run_as()
    directory = Path(tempfile.mkdtemp(prefix="deltahub-pg-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    pwfile = directory / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        os.chown(pwfile, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
    data = directory / "data"
    try:
        initdb = ["-D", str(data), "-U", USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"]
        _as(user, [str(bindir / "initdb"), *initdb])
        port = _free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        _as(user, [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "-t", "60", "start"])
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = getattr(error, "stderr", "") or ""
        shutil.rmtree(directory, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL from {bindir}: {str(error).splitlines()[0]} {detail.strip()[-300:]}") from None
    return PostgresServer(port=port, directory=directory, bindir=bindir, user=user)
