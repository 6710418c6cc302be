"""Trials sharing a TrialCache: one backbone load and one encoding per task, records as if each trial were alone."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import peftspace.formats
import peftspace.models
from peftspace.formats import make_format
from peftspace.trial import Schedule, TrialCache, run_trial, train_trial

TINY = Schedule(max_steps=2, batch_size=4, max_length=32, max_train_examples=16, max_eval_examples=8, log_every=1)
FROZEN = replace(TINY, learning_rate=0.0)  # nothing moves: the trained model shows its initialization


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py



def _outcome(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "wall_time_s"}


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("first", ["bitfit", "s4-t5-base-recalled"])  # trains BERT's own biases; + prefix and adapters
def test_a_warm_cache_gives_the_record_and_weights_of_a_cold_one(sst2, first):
    cache = TrialCache()
    assert train_trial(first, "minilm", sst2, TINY, seed=0, cache=cache).record["status"] == "ok"
    warm = train_trial("lora", "minilm", sst2, TINY, seed=1, cache=cache)
    assert warm.record["status"] == "ok"
    for cold in (train_trial("lora", "minilm", sst2, TINY, seed=1, cache=TrialCache()),  # a copy of what it loads
                 train_trial("lora", "minilm", sst2, TINY, seed=1)):  # no cache: trains the model it loads
        assert _outcome(warm.record) == _outcome(cold.record)
        assert _same_tensors(warm.model.state_dict(), cold.model.state_dict())


def test_trials_leave_the_pristine_backbone_as_loaded(sst2):
    cache = TrialCache()
    fmt = make_format("head", sst2.spec, cache.tokenizer("minilm"), TINY.max_length)
    key = ("minilm", fmt.model_class(), fmt.model_kwargs())
    before, newly_initialized = cache.model(*key)
    assert newly_initialized == {"classifier.weight", "classifier.bias"}
    for design in ("bitfit", "s4-t5-base-recalled"):
        assert run_trial(design, "minilm", sst2, TINY, seed=0, cache=cache)["status"] == "ok"
    after, _ = cache.model(*key)
    fresh = peftspace.models.load_backbone("minilm", fmt.model_class(), **fmt.model_kwargs())

    assert after is not before and after.classifier.weight.data_ptr() != before.classifier.weight.data_ptr()
    assert _same_tensors(after.state_dict(), before.state_dict())
    loaded = {k: v for k, v in fresh.state_dict().items() if k not in newly_initialized}
    assert _same_tensors(loaded, {k: after.state_dict()[k] for k in loaded})
    assert not hasattr(after, "peftspace_plan") and not any("peftspace" in name for name, _ in after.named_modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in after.modules())
    assert all(p.requires_grad for p in after.parameters()) and not after.training
    attention = {getattr(m, "config", after.config)._attn_implementation for m in after.modules()}
    assert attention == {fresh.config._attn_implementation} == {"sdpa"}


def test_two_trials_load_the_backbone_once_and_encode_the_task_once(sst2, monkeypatch):
    calls = {"load_backbone": 0, "load_tokenizer": 0, "encode": 0}

    def counted(owner, name):
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    counted(peftspace.models, "load_backbone")
    counted(peftspace.models, "load_tokenizer")
    counted(peftspace.formats.HeadFormat, "encode")
    cache = TrialCache()
    assert run_trial("lora", "minilm", sst2, TINY, seed=0, cache=cache)["status"] == "ok"
    after_first = dict(calls)
    assert after_first["load_backbone"] == after_first["load_tokenizer"] == 1 and after_first["encode"] > 0
    assert run_trial("bitfit", "minilm", sst2, TINY, seed=0, cache=cache)["status"] == "ok"
    assert calls == after_first
    run_trial("bitfit", "minilm", sst2, TINY, seed=0)  # without a shared cache every trial loads again
    assert calls["load_backbone"] == 2


def test_the_head_is_drawn_from_each_trials_seed(sst2):
    cache = TrialCache()
    heads = {seed: train_trial("lora", "minilm", sst2, FROZEN, seed=seed, cache=cache).model.classifier.weight
             for seed in (0, 1)}
    alone = train_trial("lora", "minilm", sst2, FROZEN, seed=1).model.classifier.weight
    assert not torch.equal(heads[0], heads[1]) and torch.equal(heads[1], alone)
    assert abs(heads[1].std().item() - 0.02) < 0.005  # BERT's own scheme: normal(0, initializer_range)


def test_a_loaded_parameter_beside_a_missing_one_keeps_its_weights(tmp_path, minilm_path, sst2):
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    with torch.no_grad():
        weights["classifier.bias"].fill_(0.5)
        weights["classifier.weight"].fill_(0.25)
    save_file({k: v for k, v in weights.items() if k != "classifier.bias"}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})

    model = train_trial("bitfit", str(tmp_path), sst2, FROZEN, seed=0).model
    assert torch.equal(model.classifier.weight, torch.full_like(model.classifier.weight, 0.25))
    assert torch.equal(model.classifier.bias, torch.zeros_like(model.classifier.bias))


def test_a_worker_loads_the_backbone_once_for_all_its_trials(tmp_path, data_dir, monkeypatch):
    from peftspace.sweep import run_sweep, run_worker

    url = f"sqlite:///{tmp_path}/cache.db"
    run_sweep("S0", "minilm", ["rte"], 2, workers=0, storage=url, study_name="cache", schedule=TINY)
    real, loads = peftspace.models.load_backbone, []
    monkeypatch.setattr(peftspace.models, "load_backbone", lambda *a, **k: loads.append(a) or real(*a, **k))
    assert run_worker(url, "cache", data_dir, threads=1) == 2
    assert len(loads) == 1
