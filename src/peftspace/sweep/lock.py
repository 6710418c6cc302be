"""The queueing mutex: one process at a time queues (or re-queues) a sweep's designs, on any machine.

Queueing is check-then-act (read which designs have trials, then enqueue the others), so two
``peftspace sweep`` commands started at once on a new study would both queue every design. The
mutex is one the operating system or the database server holds for the process, so it is released
the moment the holder dies, however it dies; there is no stale-lock timeout to tune and no clock is
compared:

- SQLite: an exclusive ``flock`` on ``<database file>.peftspace-lock`` next to the database (every
  study of that file queues in turn). An in-memory database is private to its process: a thread lock.
- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) keyed by the study's name, on
  a connection held while queueing; the server drops it when that connection closes.
- MySQL: ``GET_LOCK`` on a name derived from the study's, likewise tied to the connection.

What is not covered: a PostgreSQL/MySQL holder whose (idle) lock connection alone breaks, by a
network fault or a server restart, loses the lock without noticing while its other connections queue on.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from contextlib import contextmanager

from peftspace.sweep.store import SweepError

_MEMORY = threading.Lock()


@contextmanager
def queue_lock(storage, study_name: str, *, timeout: float = 1800.0, poll: float = 0.1):
    """Hold the mutex for queueing ``study_name`` in ``storage`` (an ``RDBStorage``) while the block runs.

    Raises:
        SweepError: when another process has held it for ``timeout`` seconds (say which study and store).
    """
    engine = storage.engine
    backend = engine.url.get_backend_name()
    acquire = {"sqlite": _sqlite, "postgresql": _postgresql, "mysql": _mysql}[backend]
    with acquire(engine, study_name, timeout, poll) as held:
        if not held:
            raise SweepError(f"another process has been queueing study {study_name!r} in "
                             f"{engine.url.render_as_string(hide_password=True)} for over {timeout:.0f} s; "
                             f"wait for it to finish, or stop it if it hangs, then re-run")
        yield


def _waiting(try_once, timeout: float, poll: float) -> bool:
    deadline = time.monotonic() + timeout
    while not try_once():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


@contextmanager
def _sqlite(engine, study_name, timeout, poll):
    import fcntl

    path = engine.url.database
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        held = _MEMORY.acquire(timeout=timeout)
        try:
            yield held
        finally:
            if held:
                _MEMORY.release()
        return
    try:
        descriptor = os.open(f"{path}.peftspace-lock", os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise SweepError(f"cannot create the queueing lock {path}.peftspace-lock next to the store ({error.strerror}); "
                         f"the store's directory must be writable") from None

    def try_once() -> bool:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    try:
        held = _waiting(try_once, timeout, poll)
        yield held
    finally:
        os.close(descriptor)  # closing the file releases the lock


def _key(study_name: str) -> bytes:
    return hashlib.sha256(f"peftspace-queue:{study_name}".encode()).digest()


def _postgresql(engine, study_name, timeout, poll):
    key = int.from_bytes(_key(study_name)[:8], "big", signed=True)
    return _server_lock(engine, "SELECT pg_try_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)", {"key": key},
                        timeout, poll)


def _mysql(engine, study_name, timeout, poll):
    name = "peftspace-" + _key(study_name).hex()[:40]  # MySQL lock names: at most 64 characters
    return _server_lock(engine, "SELECT GET_LOCK(:name, 0)", "SELECT RELEASE_LOCK(:name)", {"name": name}, timeout, poll)


@contextmanager
def _server_lock(engine, acquire: str, release: str, parameters: dict, timeout, poll):
    """A lock the database server holds for one session (PostgreSQL advisory lock, MySQL GET_LOCK), polled until taken."""
    from sqlalchemy import text

    with engine.connect() as connection:
        def try_once() -> bool:
            got = connection.execute(text(acquire), parameters).scalar()
            connection.commit()  # no transaction left open while queueing; the lock belongs to the session
            return got in (True, 1)

        held = _waiting(try_once, timeout, poll)
        try:
            yield held
        finally:
            if held:
                _unlock(connection, text(release), parameters)


def _unlock(connection, statement, parameters) -> None:
    try:
        connection.execute(statement, parameters)
        connection.commit()
    except Exception:  # the connection is gone, and the server dropped the lock with it; never pool it again
        connection.invalidate()
