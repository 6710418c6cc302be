"""Where a sweep stands, read from its store: trial states, each design's state, best errors, failures.

A design (one ``design_index``) may have several trials: a trial failed as stale because its worker
died is followed by its re-queued copy. The design's state is the most advanced of its trials':
complete > running > waiting > failed. ``duplicates`` lists designs with more than one COMPLETE
trial, which the worker never lets happen: it is the check that no finished trial ran twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from peftspace.sweep.store import design_index, load_study, open_storage, read_definition, redact, retrying

DESIGN_STATES = ("complete", "running", "waiting", "failed")
_RANK = {"COMPLETE": "complete", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed"}
STALE_REASON = "its worker stopped sending heartbeats (killed or lost); the design was re-queued if retries were left"


def design_states(trials, samples: int) -> dict[int, str]:
    """The state of every design index in ``0..samples-1`` (``"missing"`` if it has no trial at all)."""
    found = defaultdict(set)
    for trial in trials:
        index = design_index(trial)
        if index is not None and trial.state.name in _RANK:
            found[index].add(_RANK[trial.state.name])
    return {i: next((s for s in DESIGN_STATES if s in found.get(i, ())), "missing") for i in range(samples)}


def design_counts(trials, samples: int) -> dict[str, int]:
    """How many designs are in each state, plus ``total``: what a progress display shows."""
    counts = Counter(design_states(trials, samples).values())
    return {**{s: counts.get(s, 0) for s in (*DESIGN_STATES, "missing")}, "total": samples}


def sweep_status(storage: str, study_name: str) -> dict:
    """A sweep's state as plain data.

    Returns:
        ``study``, ``storage`` (password hidden), ``definition``; ``trials``: Optuna trials per state;
        ``designs``: designs per state (see the module doc) and ``total``; ``best_errors``: design
        index -> its COMPLETE error (None if none yet); ``best``: ``{"design_index", "error", "trial"}``
        of the lowest error; ``failures``: for each failed design, its last trial and ``reason``;
        ``duplicates``: design indices with more than one COMPLETE trial (always empty unless the
        store was written by something else); ``done``: no design waiting, running or not yet queued.
    """
    store = open_storage(storage)
    study = load_study(store, study_name, storage)
    definition = read_definition(study)
    trials = retrying(study.get_trials, deepcopy=False)
    states = design_states(trials, definition.samples)
    complete = defaultdict(list)
    last_failure = {}
    for trial in trials:
        index = design_index(trial)
        if index is None:
            continue
        if trial.state.name == "COMPLETE":
            complete[index].append(trial)
        elif trial.state.name == "FAIL":
            last_failure[index] = trial  # trials come in order of number: the last one wins
    best_errors = {i: (min(t.value for t in complete[i]) if complete.get(i) else None) for i in range(definition.samples)}
    finished = [(e, i) for i, e in best_errors.items() if e is not None]
    best = None
    if finished:
        error, index = min(finished)
        best = {"design_index": index, "error": error, "trial": min(complete[index], key=lambda t: t.value).number}
    failures = [{"design_index": i, "trial": t.number, "reason": t.user_attrs.get("reason") or STALE_REASON}
                for i, t in sorted(last_failure.items()) if states[i] == "failed"]
    counts = design_counts(trials, definition.samples)
    return {
        "study": study_name, "storage": redact(storage), "definition": definition.to_dict(),
        "trials": dict(Counter(t.state.name for t in trials)), "designs": counts, "best_errors": best_errors, "best": best,
        "failures": failures, "duplicates": sorted(i for i, ts in complete.items() if len(ts) > 1),
        "done": counts["running"] == counts["waiting"] == counts["missing"] == 0,
    }


def retry_failed(storage: str, study_name: str) -> list[int]:
    """Re-queue every failed design (one with no COMPLETE, running or waiting trial); returns their indices.

    The new trial carries the same design, seed and ``design_index``, plus ``retry_of``: the number of
    the failed trial, whose ``reason`` stays in the store.
    """
    store = open_storage(storage)
    study = load_study(store, study_name, storage)
    definition = read_definition(study)
    trials = study.get_trials(deepcopy=False)
    states = design_states(trials, definition.samples)
    requeued = []
    for index in sorted(i for i, s in states.items() if s == "failed"):
        last = max((t for t in trials if design_index(t) == index), key=lambda t: t.number)
        attrs = {k: last.user_attrs[k] for k in ("design_index", "design", "seed")}
        retrying(study.enqueue_trial, {"design_index": index}, user_attrs={**attrs, "retry_of": last.number})
        requeued.append(index)
    return requeued


def finished_trials(storage: str, study_name: str) -> list[dict]:
    """Every COMPLETE trial of a sweep as plain data, in order of design index: what analysis and reports read.

    Each dict has ``trial`` (number), ``design_index``, ``design`` (dict), ``seed``, ``error``,
    ``average_score``, ``scores`` (task -> score), ``trainable`` (the design's parameters, heads
    excluded), ``wall_time_s`` and ``worker``.
    """
    from optuna.trial import TrialState

    study = load_study(open_storage(storage), study_name, storage)
    rows = []
    for trial in retrying(study.get_trials, deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        rows.append({"trial": trial.number, "design_index": design_index(trial), "design": attrs.get("design"),
                     "seed": attrs.get("seed"), "error": trial.value, "average_score": attrs.get("average_score"),
                     "scores": attrs.get("scores", {}), "trainable": attrs.get("trainable"),
                     "wall_time_s": attrs.get("wall_time_s"), "worker": attrs.get("worker")})
    return sorted(rows, key=lambda row: (row["design_index"], row["trial"]))
