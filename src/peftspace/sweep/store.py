"""Optuna storage for sweeps: opening a store, the sweep's stored definition, the queue of designs.

A sweep is one Optuna study. Its definition (space, model, tasks, samples, seed, schedule, and for a
sweep of designs given explicitly their ``designs_sha256``) lives in the study's user attrs, and each
design is one enqueued trial with the fixed integer param ``design_index`` (so optuna-dashboard shows
it) and user attrs ``design``, ``design_index``, ``seed``, and any extra attrs given at queue time
(named by ``extra_keys``).

Crash safety is Optuna's heartbeat: a running trial records a heartbeat every ``interval`` seconds;
one silent for longer than ``grace_period`` is failed as stale and re-queued, as a copy that keeps its
params, fixed params and user attrs, by ``RetryHeartbeatStaleTrialCallback`` (at most ``max_retry``
times per design). Trials that fail by themselves (a diverged loss, an exception) are not re-queued:
they keep their ``reason`` until ``retry_failed`` re-queues them.
"""

from __future__ import annotations

import inspect
import json
import random
import re
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from peftspace.design.errors import PeftspaceError

BACKENDS = ("sqlite", "postgresql", "mysql")
URL_HELP = "use sqlite:///path/to/file.db (one machine) or postgresql://user:password@host:port/database (many machines)"
DEFINITION_ATTR = "peftspace_sweep"
HEARTBEAT_ATTR = "peftspace_heartbeat"
DISCOVERY_ATTR = "peftspace_discovery"  # a discovery's log study (peftspace.discover)
TASK_LOCATIONS_ATTR = "peftspace_task_locations"  # task file data paths where the sweep was created
POPPED_ATTR = "popped_at_utc"  # when a worker took the trial: a timezone-aware ISO string, in UTC
DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL", "MySQLdb": "mysqlclient"}


class SweepError(PeftspaceError):
    """A sweep's storage, study or definition is unusable, and what to do about it."""


@dataclass(frozen=True)
class Heartbeat:
    """How dead workers are noticed: Optuna's heartbeat, stored in the study so every worker agrees."""

    interval: int = 60  # seconds between a running trial's heartbeats
    grace_period: int | None = None  # silence after which a running trial is stale; default 2 * interval
    max_retry: int = 3  # re-queues of a design whose worker died, before it stays failed

    def __post_init__(self):
        problems = [f"{name}={value!r} must be a positive integer" for name, value in
                    (("heartbeat interval", self.interval), ("grace period", self.grace_period or 1))
                    if not isinstance(value, int) or value < 1]
        if not isinstance(self.max_retry, int) or self.max_retry < 0:
            problems.append(f"max_retry={self.max_retry!r} must be a non-negative integer")
        if problems:
            raise SweepError("; ".join(problems))

    @property
    def grace(self) -> int:
        return self.grace_period or 2 * self.interval


@dataclass(frozen=True)
class SweepDefinition:
    """What a sweep is: re-running with the same definition continues it, a different one is refused."""

    space: dict
    model: str
    tasks: tuple[str, ...]
    samples: int
    seed: int
    schedule: dict = field(default_factory=dict)
    designs_sha256: str | None = None  # designs given explicitly (not sampled): the hash of them and their extras
    task_files: dict | None = None  # task name -> TaskFile.stored(): the declaration and each data file's SHA-256

    def to_dict(self) -> dict:
        data = json.loads(json.dumps(asdict(self)))  # tuples -> lists, as stored
        for key in ("designs_sha256", "task_files"):  # sweeps without them are stored as they always were
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SweepDefinition":
        return cls(**{**data, "tasks": tuple(data["tasks"])})


def storage_url(storage: str | None, study_name: str) -> str:
    """The storage URL to use: ``storage`` as given, a ``.db`` path as SQLite, or ``sqlite:///runs/<study>.db``."""
    if storage is None:
        Path("runs").mkdir(exist_ok=True)
        return f"sqlite:///runs/{safe_name(study_name)}.db"
    if "://" not in storage and Path(storage).suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{storage}"
    return storage


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+=-]+", "-", text).strip("-") or "sweep"


def redact(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def open_storage(url: str, heartbeat: Heartbeat | None = None):
    """An ``optuna.storages.RDBStorage`` on ``url``, with the heartbeat and re-queue of dead trials if given.

    Raises:
        SweepError: for a malformed or unsupported URL, a missing database driver, or a database
            that cannot be reached, saying which and how to fix it (never a driver traceback).
    """
    import optuna
    import sqlalchemy
    from sqlalchemy.engine import make_url

    if not isinstance(url, str) or "://" not in url:
        raise SweepError(f"storage URL {url!r} is malformed; {URL_HELP}")
    try:
        backend = make_url(url).get_backend_name()
    except (sqlalchemy.exc.ArgumentError, ValueError) as error:
        raise SweepError(f"storage URL {redact(url)!r} is malformed ({error}); {URL_HELP}") from None
    if backend not in BACKENDS:
        raise SweepError(f"storage URL {redact(url)!r} has the unsupported backend {backend!r}; {URL_HELP}")
    if backend == "sqlite":  # concurrent workers wait for the file lock instead of failing at once
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    kwargs = {}
    if heartbeat is not None:
        kwargs = {"heartbeat_interval": heartbeat.interval, "grace_period": heartbeat.grace,
                  _callback_argument(): retry_callback(heartbeat.max_retry)}
    try:
        for attempt in range(5):  # processes opening a new store at once race to create its schema: the losers retry
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # heartbeat and re-queue are "experimental" in Optuna
                    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
                break
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError, sqlalchemy.exc.ProgrammingError) as error:
                if attempt == 4 or not isinstance(error, sqlalchemy.exc.IntegrityError) and "already exists" not in str(error):
                    raise
                time.sleep(0.2 * (attempt + 1))
        if backend == "sqlite":
            _serialize_sqlite(storage.engine)
        return storage
    except ImportError as error:
        missing = getattr(error.__cause__, "name", None) or getattr(error, "name", None)
        package = DRIVERS.get(missing, missing or "the driver of " + backend)
        raise SweepError(f"cannot open storage {redact(url)!r}: its database driver {missing!r} is not installed; "
                         f"pip install '{package}'") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ValueError, OSError) as error:
        first = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise SweepError(f"cannot open storage {redact(url)!r}: {first}. Check that the database is reachable and "
                         f"the URL is right; {URL_HELP}") from None


def _serialize_sqlite(engine) -> None:
    """Make every SQLite transaction ``BEGIN IMMEDIATE`` (SQLAlchemy's recipe for pysqlite).

    pysqlite runs SELECTs outside any transaction, so two workers can both read a trial as WAITING
    (or RUNNING) and both take it (or both fail it as stale and re-queue it twice). With the write
    lock taken when a transaction begins, Optuna's read-check-write steps are serialized; the busy
    timeout makes the others wait. PostgreSQL needs none of this: Optuna locks the row there.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _driver_without_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while Optuna set up the schema predate the hooks


def _callback_argument() -> str:
    import optuna

    parameters = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in parameters else "failed_trial_callback"


def retry_callback(max_retry: int):
    """Optuna's re-queue of stale trials (renamed in Optuna 4.9): copies params, fixed params, user attrs."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
        return retry(max_retry=max_retry)


def study_names(storage) -> list[str]:
    import optuna

    return sorted(optuna.get_all_study_names(storage))


def matching_sweeps(url: str, patterns: str, store=None) -> list[str]:
    """The sweeps named by comma-separated names or shell patterns (``NAME/S1/*``), each once, in the order given.

    A pattern matches only peftspace sweeps (so ``NAME/*`` skips a discovery's log study); a name
    that matches nothing is an error listing the studies there. ``store``: ``url`` already opened.
    """
    import fnmatch

    store = open_storage(url) if store is None else store
    sweeps = sorted(s.study_name for s in retrying(store.get_all_studies) if DEFINITION_ATTR in s.user_attrs)
    found: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",") if p.strip()):
        hits = [n for n in sweeps if fnmatch.fnmatchcase(n, pattern)] if any(c in pattern for c in "*?[") else [pattern]
        if not hits or (hits == [pattern] and pattern not in sweeps):
            raise SweepError(f"no sweep {pattern!r} in {redact(url)}; sweeps there: {sweeps}")
        found += [h for h in hits if h not in found]
    return found


def default_sweeps(url: str) -> list[str]:
    """The sweeps to show when none is named: the store's only sweep, or the sweeps of its only discovery.

    Raises:
        SweepError: a store with no sweep, or with several sweeps not all of one discovery (naming them).
    """
    summaries = retrying(open_storage(url).get_all_studies)
    sweeps = sorted(s.study_name for s in summaries if DEFINITION_ATTR in s.user_attrs)
    discoveries = sorted(s.study_name for s in summaries if DISCOVERY_ATTR in s.user_attrs)
    if not sweeps:
        raise SweepError(f"{redact(url)} holds no peftspace sweep yet" + (f" (discoveries: {discoveries})" if discoveries else ""))
    if len(sweeps) == 1:
        return sweeps
    if len(discoveries) == 1 and all(s.startswith(discoveries[0] + "/") for s in sweeps):
        return sweeps
    raise SweepError(f"{redact(url)} holds {len(sweeps)} sweeps" + (f" of {len(discoveries)} discoveries {discoveries}"
                     if discoveries else "") + f"; choose with --study (a name or a pattern such as 'NAME/*'): {sweeps}")


def load_study(storage, study_name: str, url: str):
    """The existing study ``study_name``, or a SweepError naming the studies that do exist."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise SweepError(f"there is no study {study_name!r} in {redact(url)}; studies there: {study_names(storage)}") from None


def read_definition(study) -> SweepDefinition:
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is None:
        raise SweepError(f"study {study.study_name!r} is not a peftspace sweep (it has no {DEFINITION_ATTR!r} user attr)")
    return SweepDefinition.from_dict(stored)


def read_heartbeat(study) -> Heartbeat:
    return Heartbeat(**study.user_attrs.get(HEARTBEAT_ATTR, {}))


def check_definition(study, definition: SweepDefinition, url: str) -> bool:
    """Check that ``study`` holds this sweep, or none yet (then the caller stores it once its designs are drawn).

    Returns:
        True if the study is new (no definition stored yet).

    Raises:
        SweepError: listing every field that differs from the stored definition.
    """
    wanted = definition.to_dict()
    wanted["schedule"] = stored_schedule(wanted["schedule"])
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is not None:
        stored = {**stored, "schedule": stored_schedule(stored.get("schedule", {}))}
    if stored is None:
        if study.get_trials(deepcopy=False):
            raise SweepError(f"study {study.study_name!r} in {redact(url)} already has trials but is not a peftspace sweep; "
                             f"choose another study name")
        return True
    if stored != wanted:
        differences = differing(stored, wanted)
        raise SweepError(f"study {study.study_name!r} in {redact(url)} holds a different sweep, so it cannot be continued with "
                         f"these arguments (repeat the stored ones to resume it, or choose another study name to start a new "
                         f"sweep); differences: " + "; ".join(differences))
    return False


def stored_schedule(schedule: dict) -> dict:
    """A stored schedule as the full dict trials ran with (keys it predates at their old values)."""
    from peftspace.schedule import Schedule

    return Schedule.from_stored(schedule).to_dict()


def differing(stored: dict, given: dict, prefix: str = "") -> list[str]:
    """``key: stored X, given Y`` for every key of either that differs, nested dicts key by key."""
    lines = []
    for key in [*given, *(k for k in stored if k not in given)]:
        old, value = stored.get(key), given.get(key)
        if old == value:
            continue
        if isinstance(old, dict) and isinstance(value, dict):
            lines += differing(old, value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}: stored {_short(old)}, given {_short(value)}")
    return lines


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."


def design_index(trial) -> int | None:
    """The design a (frozen) trial runs: its user attr, else its (fixed) param; None for a stray trial."""
    index = trial.user_attrs.get("design_index", trial.params.get("design_index"))
    if index is None:
        index = trial.system_attrs.get("fixed_params", {}).get("design_index")
    return index


def enqueue_designs(study, designs: list, seed: int, extras: list[dict] | None = None) -> int:
    """Enqueue every design whose index has no trial yet (all of them, on a new study); returns how many.

    Design i trains with seed ``seed + i``, or ``extras[i]["seed"]``; the other keys of ``extras[i]``
    become user attrs of its trial, listed in the user attr ``extra_keys``.
    """
    present = {design_index(t) for t in study.get_trials(deepcopy=False)}
    added = 0
    for index, design in enumerate(designs):
        if index in present:
            continue
        extra = dict(extras[index]) if extras else {}
        attrs = {"design_index": index, "design": design.to_dict(), "seed": extra.pop("seed", seed + index)}
        if extra:
            attrs = {**extra, **attrs, "extra_keys": sorted(extra)}
        study.enqueue_trial({"design_index": index}, user_attrs=attrs)
        added += 1
    return added


def queued_attrs(trial) -> dict:
    """The user attrs a trial was queued with (design, its index, seed, extras): what a re-queued copy carries."""
    keys = ("design_index", "design", "seed", *(("extra_keys", *trial.user_attrs["extra_keys"])
                                                 if "extra_keys" in trial.user_attrs else ()))
    return {k: trial.user_attrs[k] for k in keys if k in trial.user_attrs}


def take_waiting(store, trial_id: int) -> bool:
    """Make a WAITING trial RUNNING for this process, as ``Study.ask`` does; False if it is not waiting any more.

    Its heartbeat and ``popped_at_utc`` are recorded before it turns RUNNING, so a process killed at
    any moment after that leaves a trial that ``reap_stale`` sees as stale (the stamp is written
    first so that a re-queued copy never runs under the stamp its failed original was taken with).
    """
    import optuna
    from optuna.trial import TrialState

    try:
        retrying(store.record_heartbeat, trial_id)
        retrying(store.set_trial_user_attr, trial_id, POPPED_ATTR, datetime.now(timezone.utc).isoformat())
        return bool(retrying(store.set_trial_state_values, trial_id, state=TrialState.RUNNING))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # finished (or cancelled) meanwhile


def reap_stale(study, heartbeat: Heartbeat) -> int:
    """Fail running trials whose worker died and re-queue them; returns how many were failed.

    Two cases: Optuna's stale trials (heartbeat silent for ``grace``), and trials killed between
    being popped from the queue and their first heartbeat, which Optuna never sees as stale: a running
    trial without this attempt's ``attempt`` marker, popped more than ``grace`` seconds ago.

    Clocks. Optuna's check is safe across machines: the heartbeat is written and compared with the
    database's ``CURRENT_TIMESTAMP`` (PostgreSQL: the server's one clock, as long as every client
    keeps the server's session time zone; SQLite: the clock, in UTC, of the machine that runs the
    statement, i.e. the one machine of a local store). Ours compares ``popped_at_utc``, the UTC
    time the popping worker wrote, with this machine's UTC time: time zones cannot matter, and
    clocks need only agree (NTP) to well within ``grace``. Only a trial without that stamp (popped
    by an older worker or by ``Study.ask``) falls back to Optuna's ``datetime_start``, the *naive
    local* time of the machine that started it: safe only when all machines share one time zone.
    """
    import optuna
    from optuna.trial import TrialState

    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        retrying(optuna.storages.fail_stale_trials, study)
    now, local_now = datetime.now(timezone.utc), datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("attempt") == trial.number:
            continue
        popped = popped_at(trial)
        if popped is not None:
            age = now - popped
        elif trial.datetime_start is not None:
            age = local_now - trial.datetime_start
        else:
            continue
        if age > timedelta(seconds=heartbeat.grace):
            try:
                if not retrying(study._storage.set_trial_state_values, trial._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # finished meanwhile, or failed by another worker
            retry_callback(heartbeat.max_retry)(study, study._storage.get_trial(trial._trial_id))
    return len({t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))} - before)


def popped_at(trial) -> datetime | None:
    """When a worker took ``trial`` (its ``popped_at_utc``, timezone-aware), or None without a valid stamp."""
    try:
        when = datetime.fromisoformat(trial.user_attrs.get(POPPED_ATTR))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None


def retrying(call, *args, attempts: int = 12, **kwargs):
    """``call`` retried on transient storage errors (SQLite's 'database is locked' under concurrent workers)."""
    import optuna
    import sqlalchemy

    jitter = random.Random()
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + jitter.random()))
