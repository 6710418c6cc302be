"""The real pretrained MiniLM: budgets, and our strategies against independent references."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModel, AutoTokenizer, T5Config

import peftspace
from peftspace import Design, StrategyOptions
from peftspace.strategies.adapter import Adapter
from peftspace.strategies.lora import LoRA
from peftspace.strategies.prefix import Prefix

SENTENCES = ["a gorgeous , witty , seductive movie .", "the story is too thin to carry the film and it shows", "meh"]


@pytest.fixture(scope="module")
def minilm(minilm_path):
    torch.manual_seed(0)
    return AutoModel.from_pretrained(minilm_path).eval()


@pytest.fixture(scope="module")
def batch(minilm_path):
    return dict(AutoTokenizer.from_pretrained(minilm_path)(SENTENCES, padding=True, return_tensors="pt"))


def _randomize(model, std=0.05, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * std)


@pytest.mark.parametrize("name", ["adapter", "prefix", "bitfit", "lora", "parallel-adapter", "mam", "s4-t5-base-recalled"])
def test_presets_on_minilm_train_exactly_what_they_plan(minilm, batch, name):
    model = copy.deepcopy(minilm)
    with torch.no_grad():
        frozen = model(**batch).last_hidden_state
    plan = peftspace.apply(model, name)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert {n for n, _ in trainable} == {n for n, _ in model.named_parameters() if "peftspace_" in n}
    assert sum(p.numel() for _, p in trainable) == plan.training_total
    if name != "bitfit":  # BitFit's size is fixed by the backbone, whatever the budget
        assert abs(plan.total - plan.budget) <= 0.02 * plan.budget
    if "P" not in "".join(plan.design.strategies):
        with torch.no_grad():
            assert torch.allclose(model(**batch).last_hidden_state, frozen, atol=1e-6, rtol=0)


def test_uniform_half_percent_on_minilm_after_apply(minilm):
    model = copy.deepcopy(minilm)
    backbone = sum(p.numel() for p in minilm.parameters())
    plan = peftspace.apply(model, Design(strategies=("L",), budget_fraction=0.005))
    actual = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert plan.backbone_parameters == backbone
    assert abs(actual - 0.005 * backbone) <= 0.02 * 0.005 * backbone


def test_uniform_half_percent_on_t5_base_config_without_weights():
    config = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12, num_heads=12)
    for strategies in ("L", "A", "P", "AP"):
        plan = peftspace.plan(config, Design(strategies=(strategies,), budget_fraction=0.005))
        assert plan.backbone_parameters == 222_903_552  # t5-base: shared embedding once, no LM head
        assert len({layer.index for layer in plan.layers}) == 24
        assert abs(plan.total - 0.005 * plan.backbone_parameters) <= 0.02 * 0.005 * plan.backbone_parameters


def test_our_lora_matches_hf_peft(minilm, batch):
    from peft import LoraConfig, get_peft_model

    ours = copy.deepcopy(minilm)
    peftspace.apply(ours, Design(strategies=("L",), budget_params=6 * 8 * 2 * (384 + 384),
                                 options=StrategyOptions(lora_alpha=32.0)))
    _randomize(ours)
    reference = get_peft_model(copy.deepcopy(minilm), LoraConfig(r=8, lora_alpha=32, target_modules=["query", "value"]))
    modules = dict(reference.named_modules())
    copied = 0
    for name, module in ours.named_modules():
        if isinstance(module, LoRA):
            target = modules["base_model.model." + name.rsplit(".", 1)[0]]
            assert module.rank == 8 and target.scaling["default"] == module.scale == 4.0
            target.lora_A["default"].weight.data.copy_(module.lora_A.weight)
            target.lora_B["default"].weight.data.copy_(module.lora_B.weight)
            copied += 1
    assert copied == 12
    with torch.no_grad():
        expected = reference(**batch).last_hidden_state
        got = ours(**batch).last_hidden_state
    assert (got - expected).abs().max() < 1e-5
    assert (got - minilm(**batch).last_hidden_state).abs().max() > 1e-3


def test_our_adapter_matches_a_reference_bottleneck_adapter(minilm, batch):
    """Reference: Houlsby/Pfeiffer bottleneck on the FFN output, written out by hand below."""
    ours = copy.deepcopy(minilm)
    peftspace.apply(ours, Design(strategies=("A",), budget_fraction=0.005, options=StrategyOptions(adapter_nonlinearity="relu")))
    _randomize(ours)
    reference = copy.deepcopy(minilm)
    hidden = reference.embeddings(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"])
    additive_mask = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    with torch.no_grad():
        for ref_layer, our_layer in zip(reference.encoder.layer, ours.encoder.layer):
            adapter: Adapter = our_layer.output.dense.peftspace_adapter
            attended = ref_layer.attention(hidden, attention_mask=additive_mask)[0]
            ffn = ref_layer.output.dense(ref_layer.intermediate(attended))
            down = torch.relu(ffn @ adapter.down.weight.T + adapter.down.bias)
            ffn = ffn + down @ adapter.up.weight.T + adapter.up.bias
            hidden = ref_layer.output.LayerNorm(ffn + attended)
        got = ours(**batch).last_hidden_state
    assert (got - hidden).abs().max() < 1e-5


def test_our_prefix_matches_attention_over_prepended_keys(minilm, batch):
    ours = copy.deepcopy(minilm)
    peftspace.apply(ours, Design(strategies=("P",), budget_fraction=0.005))
    layer = ours.encoder.layer[0]
    attention, prefix = layer.attention.self, layer.attention.self.peftspace_prefix
    assert isinstance(prefix, Prefix) and prefix.length > 1
    hidden = torch.randn(3, batch["input_ids"].shape[1], 384, generator=torch.Generator().manual_seed(0))
    additive_mask = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    with torch.no_grad():
        got = attention(hidden, attention_mask=additive_mask)[0]
        b, n, _ = hidden.shape
        heads = lambda x: x.view(b, n, attention.num_attention_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = heads(attention.query(hidden)), heads(attention.key(hidden)), heads(attention.value(hidden))
        k = torch.cat([prefix.keys.expand(b, -1, -1, -1), k], dim=2)
        v = torch.cat([prefix.values.expand(b, -1, -1, -1), v], dim=2)
        mask = torch.cat([torch.zeros(b, 1, 1, prefix.length), additive_mask], dim=-1)
        expected = ((q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5 + mask).softmax(-1) @ v).transpose(1, 2).reshape(b, n, -1)
    assert (got.reshape(b, n, -1) - expected).abs().max() < 1e-5


def test_export_peft_loads_in_peft_with_the_same_outputs(minilm, batch, tmp_path):
    from peft import PeftModel

    ours = copy.deepcopy(minilm)
    plan = peftspace.apply(ours, Design(strategies=("L",), allocation="increasing", budget_fraction=0.005))
    assert len({layer.sizes["L"] for layer in plan.layers}) > 1  # per-layer ranks: needs rank_pattern
    _randomize(ours)
    peftspace.export_peft(ours, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    loaded = PeftModel.from_pretrained(copy.deepcopy(minilm), tmp_path).eval()
    with torch.no_grad():
        assert (loaded(**batch).last_hidden_state - ours(**batch).last_hidden_state).abs().max() < 1e-5


def test_export_peft_refuses_non_lora_designs(minilm, tmp_path):
    model = copy.deepcopy(minilm)
    peftspace.apply(model, "mam")
    with pytest.raises(peftspace.design.ModelError, match="LoRA-only"):
        peftspace.export_peft(model, tmp_path)
