"""What a report reads from a store: its discoveries and plain sweeps, with their finished trials.

A **sweep** is an Optuna study with the user attr ``peftspace_sweep`` (its definition). A
**discovery** is an Optuna study without trials whose user attr ``peftspace_discovery`` holds the
record of a stage-wise narrowing. Under the paper protocol each option of each stage names a sweep
study in the same store; under the racing protocol a stage names one sweep study (``study``) that
holds every block's designs, and the strategy stage also names its pool (``studies``). The record
may belong to a discovery still running: a stage may have no ranking or race yet, and a study may
not exist yet.

Nothing here writes to the store; a store file that does not exist is an error, never created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from peftspace.sweep.store import DEFINITION_ATTR, SweepError, open_storage, redact, retrying

DISCOVERY_ATTR = "peftspace_discovery"


@dataclass(frozen=True)
class SweepData:
    """One sweep as plain data: its definition, its COMPLETE trials (``finished_trials``) and ``sweep_status``.

    ``outcomes``: one ``design_outcomes`` row per design (with the extras it was queued with, such as
    a racing design's ``block`` and ``options``), read for the studies of racing stages only.
    """

    study: str
    definition: dict
    trials: tuple[dict, ...]
    status: dict
    outcomes: tuple[dict, ...] = ()

    @property
    def errors(self) -> list[float]:
        return [row["error"] for row in self.trials]


@dataclass(frozen=True)
class DiscoveryData:
    """A discovery's record and the sweeps of its options that exist in the store, by study name."""

    name: str
    record: dict
    sweeps: dict[str, SweepData] = field(default_factory=dict)

    def option_studies(self) -> list[str]:
        """Every option study the record names, in stage order (present in the store or not)."""
        return [option["study"] for stage in self.record.get("stages") or ()
                for option in (stage.get("options") or {}).values() if option.get("study")]

    def racing_studies(self) -> list[str]:
        """The studies of racing stages: each stage's ``study`` (its race) and ``studies`` (a pool and its final race)."""
        found = []
        for stage in self.record.get("stages") or ():
            if stage.get("protocol") == "racing":
                found += [s for s in (stage.get("study"), *(stage.get("studies") or ())) if isinstance(s, str) and s]
        return list(dict.fromkeys(found))

    def check_study(self) -> str | None:
        """The study of the discovery's fidelity check (its designs re-trained longer), if it has one."""
        check = self.record.get("fidelity_result")
        study = check.get("study") if isinstance(check, dict) else None
        return study if isinstance(study, str) and study else None

    def member_studies(self) -> list[str]:
        """Every study the record names, in stage order (the fidelity check's last), without repeats (present in the
        store or not)."""
        return list(dict.fromkeys([*self.option_studies(), *self.racing_studies(), *filter(None, [self.check_study()])]))


@dataclass(frozen=True)
class StoreData:
    url: str
    discoveries: tuple[DiscoveryData, ...]
    sweeps: tuple[SweepData, ...]  # plain sweeps: not an option of a reported discovery


def store_url(storage: str) -> str:
    """An Optuna storage URL for ``storage``: a URL as given, or the path of an existing SQLite file.

    Raises:
        SweepError: a path or ``sqlite:///`` file that does not exist (it is never created), or an
            in-memory SQLite URL (it holds nothing to report).
    """
    if not isinstance(storage, str) or not storage.strip():
        raise SweepError(f"store {storage!r} is empty; give sqlite:///path.db, postgresql://user@host/db or the path of a .db file")
    if "://" not in storage:
        if not Path(storage).is_file():
            raise SweepError(f"store file {storage!r} does not exist; give the path of a sweep's .db file or a storage URL "
                             f"(sqlite:///path.db, postgresql://user@host/db)")
        return f"sqlite:///{storage}"
    if storage.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        try:
            database = make_url(storage).database
        except Exception as error:  # sqlalchemy raises ArgumentError or ValueError on malformed URLs
            raise SweepError(f"storage URL {storage!r} is malformed ({error}); use sqlite:///path/to/file.db") from None
        if not database or database == ":memory:":
            raise SweepError(f"storage URL {storage!r} is an in-memory SQLite database, which holds no sweeps to report")
        if not Path(database).is_file():
            raise SweepError(f"store file {database!r} (from {storage!r}) does not exist; check the path "
                             f"(sqlite:///relative/path.db, sqlite:////absolute/path.db)")
    return storage


def collect(storage: str, studies: list[str] | None = None) -> StoreData:
    """Read the store's discoveries and sweeps (all of them, or those named in ``studies``).

    A named discovery brings its option sweeps along; a named sweep is reported on its own even when
    it belongs to a discovery.

    Raises:
        SweepError: a missing store, a store without peftspace sweeps or discoveries, or a named study
            that does not exist or is neither a sweep nor a discovery (naming what exists).
    """
    url = store_url(storage)
    store = open_storage(url)
    summaries = {s.study_name: s.user_attrs for s in retrying(store.get_all_studies)}
    discoveries = {name: attrs[DISCOVERY_ATTR] for name, attrs in summaries.items() if isinstance(attrs.get(DISCOVERY_ATTR), dict)}
    sweeps = {name: attrs[DEFINITION_ATTR] for name, attrs in summaries.items() if isinstance(attrs.get(DEFINITION_ATTR), dict)}
    if not discoveries and not sweeps:
        raise SweepError(f"store {redact(url)} holds no peftspace sweeps or discoveries "
                         f"(studies there: {sorted(summaries) or 'none'}); run `peftspace sweep` or a discovery first")
    if studies is None:
        wanted_discoveries, wanted_sweeps = sorted(discoveries), None
    else:
        problems = [f"{name!r} does not exist" if name not in summaries else f"{name!r} is neither a peftspace sweep nor a discovery"
                    for name in studies if name not in discoveries and name not in sweeps]
        if problems:
            raise SweepError(f"cannot report on {redact(url)}: " + "; ".join(problems) +
                             f". Discoveries there: {sorted(discoveries) or 'none'}; sweeps: {sorted(sweeps) or 'none'}")
        wanted_discoveries = [n for n in dict.fromkeys(studies) if n in discoveries]
        wanted_sweeps = [n for n in dict.fromkeys(studies) if n in sweeps and n not in discoveries]
    found = []
    for name in wanted_discoveries:
        bare = DiscoveryData(name, discoveries[name])
        racing = set(bare.racing_studies())
        found.append(DiscoveryData(name, bare.record, {s: read_sweep(url, s, outcomes=s in racing)
                                                       for s in bare.member_studies() if s in sweeps}))
    if wanted_sweeps is None:
        taken = {s for d in found for s in d.member_studies()}
        wanted_sweeps = [n for n in sorted(sweeps) if n not in taken and n not in discoveries]
    return StoreData(url, tuple(found), tuple(read_sweep(url, name) for name in wanted_sweeps))


def read_sweep(url: str, study: str, *, outcomes: bool = False) -> SweepData:
    """A sweep's :class:`SweepData`; ``outcomes``: also its ``design_outcomes`` rows."""
    from peftspace.sweep.status import design_outcomes, finished_trials, sweep_status

    status = sweep_status(url, study)
    rows = [row for row in finished_trials(url, study) if isinstance(row["error"], (int, float)) and math.isfinite(row["error"])]
    return SweepData(study, status["definition"], tuple(rows), status, tuple(design_outcomes(url, study)) if outcomes else ())

