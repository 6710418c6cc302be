"""optuna-dashboard reads a sweep's store as it is: its studies, trials, the design_index param and our user attrs."""

from __future__ import annotations

import io
import json

import optuna
import pytest
from optuna.trial import TrialState

from peftspace.sweep import run_sweep
from peftspace.sweep.store import open_storage

import optuna_dashboard as dashboard  # noqa: E402  (pinned in requirements/dev.txt: missing is a failure, not a skip)


def _get(app, path: str) -> tuple[str, dict]:
    replies = {}

    def start_response(status, headers, exc_info=None):
        replies["status"] = status

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
               "SERVER_PORT": "80", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "wsgi.errors": io.StringIO()}
    body = b"".join(app(environ, start_response))
    return replies["status"], json.loads(body)


def test_optuna_dashboard_lists_the_sweep_and_its_trials(tmp_path, tiny):
    url = f"sqlite:///{tmp_path}/store.db"
    run_sweep("S0", "minilm", ["rte"], 3, workers=0, storage=url, study_name="queued", schedule=tiny)
    study = optuna.load_study(study_name="queued", storage=open_storage(url))
    trial = study.ask()  # a finished trial, written as a worker writes one
    trial.set_user_attr("error", 41.5)
    study.tell(trial, 41.5, state=TrialState.COMPLETE)

    app = dashboard.wsgi(url)
    status, listing = _get(app, "/api/studies")
    assert status.startswith("200")
    [summary] = listing["study_summaries"]
    assert summary["study_name"] == "queued"
    status, detail = _get(app, f"/api/studies/{summary['study_id']}")
    assert status.startswith("200")
    states = sorted(t["state"] for t in detail["trials"])
    assert states == ["Complete", "Waiting", "Waiting"]  # ask() took the first queued design
    waiting = [t for t in detail["trials"] if t["state"] == "Waiting"]
    assert all(any(a["key"] == "design" for a in t["user_attrs"]) for t in waiting)
