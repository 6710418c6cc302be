"""Where a sweep stands, read from its store: trial states, each design's state, best errors, failures.

A design (one ``design_index``) may have several trials: a trial failed as stale because its worker
died is followed by its re-queued copy. The design's state is the most advanced of its trials':
complete > running > waiting > cancelled > failed, where a cancelled trial is one that
``cancel_waiting`` moved from WAITING to PRUNED. ``duplicates`` lists designs with more than one
COMPLETE trial, which the worker never lets happen: it is the check that no finished trial ran twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from peftspace.sweep.store import (SweepError, design_index, load_study, open_storage, queued_attrs, read_definition, redact,
                                   retrying, take_waiting)

DESIGN_STATES = ("complete", "running", "waiting", "cancelled", "failed")
_RANK = {"COMPLETE": "complete", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed"}
STALE_REASON = "its worker stopped sending heartbeats (killed or lost); the design was re-queued if retries were left"
RESULTS = ("error", "validation_error", "mid_validation_error", "scores", "validation_scores", "trainable")
# User attrs and outcome columns that extra attrs given at queue time may not use.
RESERVED_ATTRS = frozenset({"design_index", "design", "extra_keys", "attempt", "popped_at_utc", "worker", "retry_of",
                            "cancelled", "status", "failure", "reason", "tasks", "average_score", "mid_validation_scores",
                            "wall_time_s", "trial", "state", *RESULTS})


def trial_state(trial) -> str | None:
    """The design state a trial stands for (``"cancelled"`` for one pruned by ``cancel_waiting``), or None."""
    if trial.state.name == "PRUNED":
        return "cancelled" if trial.user_attrs.get("cancelled") else None
    return _RANK.get(trial.state.name)


def design_states(trials, samples: int) -> dict[int, str]:
    """The state of every design index in ``0..samples-1`` (``"missing"`` if it has no trial at all)."""
    found = defaultdict(set)
    for trial in trials:
        index, state = design_index(trial), trial_state(trial)
        if index is not None and state is not None:
            found[index].add(state)
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
    """Re-queue every failed design (one with no COMPLETE, running, waiting or cancelled trial); returns their indices.

    The new trial carries the same design, seed, ``design_index`` and extra attrs, plus ``retry_of``:
    the number of the failed trial, whose ``reason`` stays in the store. Holds ``queue_lock``, so
    two calls at once re-queue each design once.
    """
    from peftspace.sweep.lock import queue_lock

    store = open_storage(storage)
    study = load_study(store, study_name, storage)
    definition = read_definition(study)
    requeued = []
    with queue_lock(store, study_name):
        trials = retrying(study.get_trials, deepcopy=False)
        states = design_states(trials, definition.samples)
        for index in sorted(i for i, s in states.items() if s == "failed"):
            last = max((t for t in trials if design_index(t) == index), key=lambda t: t.number)
            study.enqueue_trial({"design_index": index}, user_attrs={**queued_attrs(last), "retry_of": last.number})
            requeued.append(index)
    return requeued


def cancel_waiting(storage: str, study_name: str, design_indices, reason: str) -> list[int]:
    """Cancel the waiting trials of these designs (WAITING -> PRUNED, user attrs ``cancelled`` and ``reason``).

    A trial is taken as a worker takes it (WAITING -> RUNNING, one process wins) and then pruned, so
    one that a worker took meanwhile runs on, and RUNNING and finished trials are never touched; a
    worker never runs a pruned trial. (Killed between the two steps, a trial is failed as stale and
    re-queued: cancel again.)

    Returns:
        The design indices whose waiting trial this call cancelled, sorted.
    """
    import optuna
    from optuna.trial import TrialState

    if not isinstance(reason, str) or not reason:
        raise SweepError(f"reason={reason!r} must be a non-empty string: it is what the cancelled trials say")
    wanted = set(design_indices)
    store = open_storage(storage)
    study = load_study(store, study_name, storage)
    cancelled = set()
    for trial in retrying(study.get_trials, deepcopy=False, states=(TrialState.WAITING,)):
        index = design_index(trial)
        if index not in wanted or not take_waiting(store, trial._trial_id):
            continue  # another design, or a worker took it meanwhile
        try:
            retrying(store.set_trial_user_attr, trial._trial_id, "reason", reason)
            retrying(store.set_trial_user_attr, trial._trial_id, "cancelled", True)
            retrying(store.set_trial_state_values, trial._trial_id, state=TrialState.PRUNED)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # failed as stale meanwhile: its copy waits again
        cancelled.add(index)
    return sorted(cancelled)


def design_outcomes(storage: str, study_name: str) -> list[dict]:
    """One row per design index of a sweep, in order: its state and, once complete, its results.

    Each row has ``design_index``, ``state`` (complete, running, waiting, cancelled, failed or missing,
    see the module doc), ``trial`` (the number of the trial the row describes: the best COMPLETE one,
    the running or waiting one, the cancelled one, the last failed one), ``error``,
    ``validation_error``, ``mid_validation_error``, ``scores``, ``validation_scores`` and
    ``trainable`` (of a complete design, else None), ``wall_time_s`` (of that trial), ``reason`` (why
    it failed, or was cancelled), ``design`` and ``seed``, and every extra attr given at queue time
    (``queue_sweep(extras=...)``, e.g. ``block`` and ``option``).
    """
    study = load_study(open_storage(storage), study_name, storage)
    samples = read_definition(study).samples
    trials = retrying(study.get_trials, deepcopy=False)
    states = design_states(trials, samples)
    mine = defaultdict(list)
    for trial in trials:  # in order of number
        if design_index(trial) is not None:
            mine[design_index(trial)].append(trial)
    rows = []
    for index in range(samples):
        state, attempts = states[index], mine.get(index, [])
        shown = _shown(attempts, state)
        attrs = shown.user_attrs if shown is not None else {}
        queued = queued_attrs(attempts[0]) if attempts else {}
        row = {"design_index": index, "state": state, "trial": None if shown is None else shown.number,
               **{key: None for key in RESULTS}, "wall_time_s": attrs.get("wall_time_s"), "reason": None,
               "design": queued.get("design"), "seed": queued.get("seed")}
        if state == "complete":
            row.update({key: attrs.get(key) for key in RESULTS}, error=shown.value)
        elif state in ("failed", "cancelled"):
            row["reason"] = attrs.get("reason") or STALE_REASON
        rows.append({**row, **{key: queued[key] for key in queued.get("extra_keys", ())}})
    return rows


def _shown(attempts: list, state: str):
    """The trial that a design's outcome row describes (None for a missing design)."""
    if state == "missing":
        return None
    matching = [t for t in attempts if trial_state(t) == state]
    return min(matching, key=lambda t: t.value) if state == "complete" else matching[-1]


def finished_trials(storage: str, study_name: str) -> list[dict]:
    """Every COMPLETE trial of a sweep as plain data, in order of design index: what analysis and reports read.

    Each dict has ``trial`` (number), ``design_index``, ``design`` (dict), ``seed``, ``error``,
    ``average_score``, ``scores`` (task -> score), ``validation_error``, ``mid_validation_error``
    (None where a task lacks that score, and for trials stored before these existed),
    ``validation_scores`` (task -> score), ``trainable`` (the design's parameters, heads excluded),
    ``wall_time_s`` and ``worker``.
    """
    from optuna.trial import TrialState

    study = load_study(open_storage(storage), study_name, storage)
    rows = []
    for trial in retrying(study.get_trials, deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = trial.user_attrs
        rows.append({"trial": trial.number, "design_index": design_index(trial), "design": attrs.get("design"),
                     "seed": attrs.get("seed"), "error": trial.value, "average_score": attrs.get("average_score"),
                     "scores": attrs.get("scores", {}), "validation_error": attrs.get("validation_error"),
                     "mid_validation_error": attrs.get("mid_validation_error"),
                     "validation_scores": attrs.get("validation_scores", {}), "trainable": attrs.get("trainable"),
                     "wall_time_s": attrs.get("wall_time_s"), "worker": attrs.get("worker")})
    return sorted(rows, key=lambda row: (row["design_index"], row["trial"]))
