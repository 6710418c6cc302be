"""FastDropout must be dropout: independent Bernoulli(1 - p) masks, inverted scaling, identity in eval."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from peftspace.dropout import STEPS, FastDropout, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_each_entry_is_kept_with_probability_one_minus_p(p):
    count = 1 << 22
    kept = keep_mask((count,), p, generator=torch.Generator().manual_seed(0))
    rate = 1 - round(p * STEPS) / STEPS
    sigma = math.sqrt(rate * (1 - rate) / count)
    assert abs(kept.double().mean().item() - rate) < 5 * sigma


def test_the_four_entries_cut_from_one_draw_are_independent():
    p, count = 0.3, 1 << 22
    lanes = keep_mask((count // 4, 4), p, generator=torch.Generator().manual_seed(1)).double()
    dropped = 1 - lanes
    sigma = math.sqrt(p * p * (1 - p * p) / (count // 4))
    for a, b in [(0, 1), (1, 2), (2, 3), (0, 3)]:  # entries of the same 64-bit word
        assert abs((dropped[:, a] * dropped[:, b]).mean().item() - p * p) < 5 * sigma
    for lane in range(4):
        assert abs(dropped[:, lane].mean().item() - p) < 5 * math.sqrt(p * (1 - p) / (count // 4))


@pytest.mark.parametrize("shape", [(7,), (3, 5, 7), (2, 4, 8)])
def test_kept_entries_are_scaled_dropped_are_zero_and_gradients_follow_the_mask(shape):
    torch.manual_seed(0)
    x = (torch.rand(shape) + 1).requires_grad_(True)
    dropout = FastDropout(0.25).train()
    y = dropout(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() / 0.75)


def test_eval_mode_and_p_zero_are_the_identity_and_p_one_drops_everything():
    x = torch.randn(4, 9)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.equal(FastDropout(1.0).train()(x), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FastDropout(1.5)


def test_the_same_seed_gives_the_same_mask_and_bf16_inputs_stay_bf16():
    x = torch.ones(64, 33, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = FastDropout(0.1).train()(x)
    torch.manual_seed(3)
    assert torch.equal(first, FastDropout(0.1).train()(x)) and first.dtype == torch.bfloat16


def test_every_plain_dropout_of_a_real_model_is_swapped_keeping_p(minilm_path):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
    before = {name: m.p for name, m in model.named_modules() if type(m) is nn.Dropout}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_fast_dropout(model) == len(before) + 6 > 16  # and the 6 self-attentions
    after = {name: m.p for name, m in model.named_modules() if isinstance(m, FastDropout)}
    assert after == before and not any(type(m) is nn.Dropout for m in model.modules())
    assert model.state_dict().keys() == state.keys()
    batch = {"input_ids": torch.tensor([[101, 2023, 2003, 102]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    model.eval()
    with torch.no_grad():
        swapped = model(**batch).logits
    model.load_state_dict(state)
    fresh = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2).eval()
    fresh.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(swapped, fresh(**batch).logits)  # eval mode: nothing else changed


def _attention_inputs(seed=0, batch=3, heads=4, length=7, dim=8):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, length, dim, generator=g) for _ in range(3))
    mask = torch.ones(batch, 1, length, length, dtype=torch.bool)
    mask[1, ..., 5:] = False  # padded keys
    return q, k, v, mask


def test_fast_attention_is_sdpa_when_not_dropping_and_the_math_with_its_mask_when_dropping():
    from peftspace.dropout import fast_dropout_attention

    q, k, v, mask = _attention_inputs()
    module = nn.Module()
    module.is_causal = False
    module.eval()
    out, _ = fast_dropout_attention(module, q, k, v, mask, scaling=0.3, dropout=0.0)  # what modules pass in eval mode
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    module.train()
    torch.manual_seed(7)
    out, _ = fast_dropout_attention(module, q, k, v, mask, scaling=0.3, dropout=0.1)
    torch.manual_seed(7)
    kept = keep_mask((3, 4, 7, 7), 0.1)
    probabilities = torch.softmax((q @ k.transpose(2, 3) * 0.3).masked_fill(~mask, -torch.inf), dim=-1)
    torch.testing.assert_close(out, ((probabilities * kept / 0.9) @ v).transpose(1, 2))
    assert not kept.all()


def test_a_trial_model_trains_through_the_fast_attention_with_and_without_prefixes(minilm_path):
    from transformers import AutoModelForSequenceClassification

    import peftspace
    from peftspace.dropout import ATTENTION

    for design in ("lora", "mam"):  # mam: prefixes in every layer
        model = AutoModelForSequenceClassification.from_pretrained(minilm_path, num_labels=2)
        peftspace.apply(model, design)
        assert use_fast_dropout(model) > 6
        implementations = {getattr(m, "peftspace_prefix", None) and m.peftspace_prefix.base_implementation
                           or m.config._attn_implementation for m in model.modules() if type(m).__name__ == "BertSelfAttention"}
        assert implementations == {ATTENTION} and model.config._attn_implementation == "sdpa"
        model.train()
        batch = {"input_ids": torch.tensor([[101, 2023, 2003, 102], [101, 2023, 102, 0]]),
                 "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]), "labels": torch.tensor([0, 1])}
        loss = model(**batch).loss
        loss.backward()
        assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_schedule_turns_fast_dropout_on_by_default_off_on_request_and_off_for_old_schedules(data_dir):
    from dataclasses import replace

    from peftspace.schedule import Schedule
    from peftspace.tasks import load_task
    from peftspace.trial import train_trial

    sst2 = load_task("sst2", data_dir, seed=0)
    schedule = Schedule(max_steps=1, batch_size=4, max_length=32, max_train_examples=8, max_eval_examples=4)
    kinds = {}
    for fast in (True, False):
        trained = train_trial("lora", "minilm", sst2, replace(schedule, fast_dropout=fast), seed=0)
        kinds[fast] = {type(m).__name__ for m in trained.model.modules() if "Dropout" in type(m).__name__}
    assert kinds == {True: {"FastDropout"}, False: {"Dropout"}}
    old = schedule.to_dict()
    del old["fast_dropout"]
    assert Schedule.from_stored(old).fast_dropout is False
    with pytest.raises(Exception, match="fast_dropout='yes' must be true or false"):
        Schedule(fast_dropout="yes")


def test_distilbert_declares_fast_attention_dropout_and_gets_it():
    import copy

    from transformers import DistilBertConfig, DistilBertModel

    from peftspace.dropout import ATTENTION

    torch.manual_seed(0)
    model = DistilBertModel(DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64, dropout=0.0,
                                             attention_dropout=0.3, max_position_embeddings=40))
    plain = copy.deepcopy(model).eval()
    dropouts = [name for name, m in model.named_modules() if type(m) is nn.Dropout]
    assert len(dropouts) == 5 and use_fast_dropout(model) == 5 + 2  # embeddings, 2 x (attention, FFN); the two attentions
    attentions = [m for m in model.modules() if type(m).__name__ == "DistilBertSelfAttention"]
    assert {m.config._attn_implementation for m in attentions} == {ATTENTION}
    batch = {"input_ids": torch.randint(3, 100, (2, 7), generator=torch.Generator().manual_seed(1)),
             "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2])}
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(**batch).last_hidden_state, plain(**batch).last_hidden_state)
        model.train()
        torch.manual_seed(5)
        first = model(**batch).last_hidden_state
        torch.manual_seed(5)
        again = model(**batch).last_hidden_state
    assert torch.equal(first, again)  # the masks come from torch's generator, so seeds reproduce them
    assert not torch.allclose(first, plain(**batch).last_hidden_state, atol=1e-3)  # the attention dropout is on
