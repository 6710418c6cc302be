"""Frozen-bottom reuse: states below the lowest modified block from a cache, with the losses of no cache.

Real MiniLM (BERT, 6 blocks) and real SST-2/RTE, one torch thread, tiny schedules. The design
tunes the top group only (blocks 4-5), so blocks 0-3 and the embeddings are served by the cache.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import peftspace
from peftspace.design import Design, ModelError, PeftspaceError
from peftspace.formats import make_format
from peftspace.frozen_bottom import BottomStore, frozen_layers, serve
from peftspace.schedule import Schedule
from peftspace.tasks import load_task
from peftspace.trial import TrialCache, run_trial, train_trial

TOP = Design(grouping="uniform", num_groups=3, tuned_groups=(2,), strategies=("AL",), name="top-third")  # blocks 4-5
TWO_EPOCHS = Schedule(max_steps=None, epochs=2, batch_size=8, max_length=48, max_train_examples=32, max_eval_examples=16,
                      learning_rate=2e-3, log_every=1, frozen_bottom="train")


pytestmark = pytest.mark.usefixtures("one_thread")


def _outcome(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("wall_time_s", "frozen_bottom")}


def test_cached_training_gives_the_losses_and_metrics_of_recomputing(sst2):
    """A store that keeps everything vs one that keeps nothing: epoch 2 served from the cache, same numbers."""
    cache = TrialCache()
    cached = train_trial(TOP, "minilm", sst2, TWO_EPOCHS, seed=0, cache=cache)
    recomputed = run_trial(TOP, "minilm", sst2, TWO_EPOCHS, seed=0, cache=TrialCache(max_activation_mb=0))
    assert cached.record["status"] == recomputed["status"] == "ok"
    assert len(cached.record["losses"]) == 8  # 2 epochs of 4 steps
    for (step, loss), (same_step, recomputed_loss) in zip(cached.record["losses"], recomputed["losses"], strict=True):
        assert step == same_step and abs(loss - recomputed_loss) <= 1e-5
    assert cached.record["metrics"] == recomputed["metrics"]
    train, evaluated = 32, 16 + 16
    assert cached.record["frozen_bottom"] == {"mode": "train", "layers": 4, "hits": train, "misses": train + evaluated}  # epoch 2: all hits
    assert recomputed["frozen_bottom"] == {"mode": "train", "layers": 4, "hits": 0, "misses": 2 * train + evaluated}
    assert _outcome(cached.record) == _outcome(recomputed)
    # a later trial on the same cache (a sweep worker's next design) is served entirely from it, as if cold
    warm = run_trial(TOP, "minilm", sst2, TWO_EPOCHS, seed=0, cache=cache)
    assert warm["frozen_bottom"] == {"mode": "train", "layers": 4, "hits": 2 * train + evaluated, "misses": 0}
    assert _outcome(warm) == _outcome(cached.record)


def test_the_default_serves_scoring_only_training_is_that_of_off_and_scores_agree(sst2):
    """frozen_bottom='eval': training untouched (dropout everywhere), scoring served from the cache, same metrics."""
    schedule = replace(TWO_EPOCHS, frozen_bottom="eval")
    cache = TrialCache()
    served = run_trial(TOP, "minilm", sst2, schedule, seed=0, cache=cache)
    plain = run_trial(TOP, "minilm", sst2, replace(schedule, frozen_bottom="off"), seed=0)
    assert served["losses"] == plain["losses"]  # the same dropout masks, step by step
    assert served["metrics"] == plain["metrics"]
    assert served["frozen_bottom"] == {"mode": "eval", "layers": 4, "hits": 0, "misses": 16 + 16}
    again = run_trial(TOP, "minilm", sst2, schedule, seed=0, cache=cache)  # the next trial of a sweep worker
    assert again["frozen_bottom"] == {"mode": "eval", "layers": 4, "hits": 32, "misses": 0}
    assert Schedule().frozen_bottom == "off"  # opt-in: misses cost more than hits save unless designs share k


def test_the_served_bottom_is_the_model_with_a_dropout_free_bottom(sst2):
    """One padded real batch in train mode: same loss and gradients as the plain model with its bottom in eval mode."""
    cache = TrialCache()
    fmt = make_format("head", sst2.spec, cache.tokenizer("minilm"), 48)
    model, _ = cache.model("minilm", fmt.model_class(), fmt.model_kwargs())
    peftspace.apply(model, TOP)
    for p in fmt.head_parameters(model):
        p.requires_grad_(True)
    assert frozen_layers(model, fmt) == 4
    examples = [sst2.train[i] for i in range(8)]
    batch = fmt.collate([fmt.encode(e) for e in examples], examples)
    assert not batch.inputs["attention_mask"].all()  # padded
    trainable = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(use_cache: bool):
        model.train()
        if not use_cache:
            model.bert.embeddings.eval()
            for block in model.bert.encoder.layer[:4]:
                block.eval()
        torch.manual_seed(5)  # the top blocks' dropout draws the same masks in both
        if use_cache:
            with serve(model, 4, BottomStore(2**30), ("minilm", 4, "fp32", "cpu")) as bottom:
                model.train()
                loss = fmt.loss(model, batch)
            assert bottom.misses == 8
        else:
            loss = fmt.loss(model, batch)
        grads = torch.autograd.grad(loss, trainable)
        return loss, grads

    plain_loss, plain_grads = loss_and_grads(False)
    served_loss, served_grads = loss_and_grads(True)
    assert abs(plain_loss.item() - served_loss.item()) <= 1e-5
    for plain, served in zip(plain_grads, served_grads, strict=True):
        torch.testing.assert_close(served, plain, atol=1e-5, rtol=1e-4)


def test_roberta_positions_and_padding_are_served_exactly():
    """RoBERTa numbers positions from the padding: a right-padded row gets the positions of the row alone."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    torch.manual_seed(0)
    model = RobertaForSequenceClassification(RobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                                           intermediate_size=64, max_position_embeddings=64)).eval()
    ids = torch.randint(3, 120, (3, 11), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 7:], mask[2, 4:] = 0, 0
    ids[mask == 0] = model.config.pad_token_id
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=mask).logits
        with serve(model, 2, BottomStore(2**20), ("tiny-roberta", 2, "fp32", "cpu")) as bottom:
            served = model(input_ids=ids, attention_mask=mask).logits
            again = model(input_ids=ids, attention_mask=mask).logits
    assert (bottom.misses, bottom.hits) == (3, 3)
    torch.testing.assert_close(served, plain, atol=1e-5, rtol=1e-4)
    assert torch.equal(served, again)
    with serve(model, 2, BottomStore(2**20), ("tiny-roberta", 2, "fp32", "cpu")), pytest.raises(ModelError, match="right padding"):
        model(input_ids=ids, attention_mask=mask.flip(1))  # left padding: positions would shift, so it is refused


def test_after_the_trial_the_model_has_its_own_modules_back(sst2):
    cached = train_trial(TOP, "minilm", sst2, TWO_EPOCHS, seed=0)
    plain = train_trial(TOP, "minilm", sst2, replace(TWO_EPOCHS, frozen_bottom="off"), seed=0)
    assert plain.record["frozen_bottom"] is None and cached.record["frozen_bottom"]["layers"] == 4
    model = cached.model
    assert model.state_dict().keys() == plain.model.state_dict().keys()
    assert type(model.bert.embeddings).__name__ == "BertEmbeddings" and len(model.bert.encoder.layer) == 6
    assert not model.bert._forward_pre_hooks
    assert not model.training and not any(m.training for m in model.modules())  # evaluated last: all in eval mode
    model.train()
    assert all(m.training for m in model.modules())


def test_k0_designs_are_unaffected(sst2):
    """LoRA in every block: nothing to serve, the record of frozen_bottom='off'."""
    schedule = replace(TWO_EPOCHS, epochs=1)
    cached = run_trial("lora", "minilm", sst2, schedule, seed=0)
    plain = run_trial("lora", "minilm", sst2, replace(schedule, frozen_bottom="off"), seed=0)
    assert cached["frozen_bottom"] is None
    assert {**_outcome(cached), "schedule": None} == {**_outcome(plain), "schedule": None}


def test_other_families_are_unaffected(tiny_t5, data_dir):
    """T5 passes block 0's position bias upwards: no cache, the same trial as frozen_bottom='off'."""
    rte = load_task("rte", data_dir, seed=0)
    top_half = Design(grouping="uniform", num_groups=2, tuned_groups=(1,), strategies=("L",), budget_fraction=0.05)  # decoder
    schedule = Schedule(max_steps=3, batch_size=4, max_length=32, max_target_length=8, max_train_examples=16,
                        max_eval_examples=8, log_every=1)
    cached = run_trial(top_half, tiny_t5, rte, schedule, seed=0)
    plain = run_trial(top_half, tiny_t5, rte, replace(schedule, frozen_bottom="off"), seed=0)
    assert cached["status"] == "ok" and cached["frozen_bottom"] is None
    assert {**_outcome(cached), "schedule": None} == {**_outcome(plain), "schedule": None}


def test_llama_is_not_served():
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=2))
    peftspace.apply(model, Design(grouping="uniform", num_groups=2, tuned_groups=(1,), strategies=("L",), budget_fraction=0.05))
    assert frozen_layers(model, fmt=None) == 0


def test_the_memory_cap_is_respected(sst2):
    cap_mb = 0.05  # room for a few examples' states (48 tokens x 384 x 4 bytes is 72 KiB at most)
    cache = TrialCache(max_activation_mb=cap_mb)
    record = run_trial(TOP, "minilm", sst2, TWO_EPOCHS, seed=0, cache=cache)
    store = cache.bottom_states
    assert 0 < len(store) < 32 and store.used_bytes <= cap_mb * 2**20
    assert 0 < record["frozen_bottom"]["hits"] < 32  # what fits is reused
    roomy = run_trial(TOP, "minilm", sst2, TWO_EPOCHS, seed=0, cache=TrialCache())
    assert _outcome(record) == _outcome(roomy)

    nothing = BottomStore(0)
    assert not nothing.add(("k", b"\x01"), torch.zeros(3, 4)) and len(nothing) == 0 and nothing.used_bytes == 0


def test_schedules_stored_before_the_key_read_as_off():
    old = Schedule().to_dict()
    del old["frozen_bottom"]
    assert Schedule.from_stored(old).frozen_bottom == "off"
    assert Schedule.from_dict({"max_steps": 5}) == Schedule(max_steps=5)  # not stored: today's defaults
    with pytest.raises(PeftspaceError, match="frozen_bottom='on' is not one of"):
        Schedule(frozen_bottom="on")
    from peftspace.cli.options import SCHEDULE, make_schedule

    assert make_schedule({**dict.fromkeys(SCHEDULE.options), "frozen_bottom": "off"}).frozen_bottom == "off"
