"""A throwaway PostgreSQL server for the store tests: Debian's server binaries, a temporary cluster on 127.0.0.1.

The session fixture ``postgres_url`` runs ``initdb`` into a fresh directory, starts the server on a
free port of 127.0.0.1 (its unix socket inside that directory, trust authentication), creates one
database and yields its URL; at the end it stops the server and removes the directory. Without
server binaries or psycopg the PostgreSQL tests skip, saying why, unless ``PEFTSPACE_REQUIRE_POSTGRES=1``
(set by ``.ci/run``): then they fail, so CI cannot pass without ever having run them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

REQUIRE = "PEFTSPACE_REQUIRE_POSTGRES"
DATABASE = "peftspace"


def unavailable(reason: str):
    """Skip the test for ``reason``; fail it when this run requires PostgreSQL."""
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason} ({REQUIRE}=1, so the PostgreSQL tests may not skip)")
    pytest.skip(reason)


def require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install 'psycopg[binary]'")


def server_bin() -> Path | None:
    """The newest PostgreSQL server's bin directory: Debian keeps it off PATH, in /usr/lib/postgresql/<major>/bin."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda path: int(Path(path).parts[-3]))
    found = debian[-1] if debian else shutil.which("pg_ctl")
    if found is None or not (Path(found).parent / "initdb").is_file():
        return None
    return Path(found).parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """``postgresql+psycopg://postgres@127.0.0.1:PORT/peftspace`` on a server that lives for the test session."""
    require_psycopg()
    bin_dir = server_bin()
    if bin_dir is None:
        unavailable("no PostgreSQL server binaries (pg_ctl, initdb) in /usr/lib/postgresql/*/bin or on PATH; "
                    "apt-get install postgresql")
    prefix = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root, but there is no 'postgres' user to run the server as")
        prefix = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp_path: its parents are private to root, and the server must reach its directory.
    root = Path(tempfile.mkdtemp(prefix="peftspace-pg-"))
    if prefix:
        shutil.chown(root, "postgres")
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(*command: str):
        done = subprocess.run([*prefix, *command], check=False, cwd=root, capture_output=True, text=True, timeout=120)
        if done.returncode:
            tail = log.read_text()[-2000:] if log.is_file() else ""
            pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--locale=C", "-E", "UTF8",
            "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   f"-c fsync=off -c full_page_writes=off")  # throwaway data: durability only costs time
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            import psycopg

            with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as connection:
                connection.execute(f"CREATE DATABASE {DATABASE}")
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DATABASE}"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
