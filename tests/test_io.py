"""Saving, loading and merging designs on real MiniLM weights (and a tiny random T5).

Every trainable parameter is overwritten with seeded noise before the checks, so a design's
output really differs from the backbone's and a lost or misplaced tensor would show.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

import peftspace
from peftspace import Design, DesignError, StrategyOptions
from peftspace.api import design_parameters
from peftspace.design import ModelError
from peftspace.families import blocks
from peftspace.strategies.adapter import Adapter
from peftspace.strategies.bitfit import BiasDelta
from peftspace.strategies.lora import LoRA
from peftspace.strategies.prefix import Prefix

MIXED = Design(grouping="spindle", strategies=("AL", "AP", "APB", "PBL"), budget_fraction=0.01)
DESIGNS = {"mixed": MIXED, "lora": "lora"}
MERGE_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def batch(tokenizer, data_dir):
    """Six real SST-2 dev sentences of different lengths, padded to the longest."""
    with open(data_dir / "glue" / "SST-2" / "dev.tsv", newline="") as handle:
        sentences = [row["sentence"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)][:6]
    encoded = tokenizer(sentences, padding=True, truncation=True, max_length=64, return_tensors="pt")
    assert (encoded["attention_mask"] == 0).any(), "the batch should exercise padding"
    return dict(encoded)


def backbone(path, dtype=torch.float32):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path, dtype=dtype).eval()


def randomize(model: nn.Module, std: float = 0.05) -> None:
    """Overwrite every trainable parameter with seeded noise (zero-initialized ones included)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, parameter in sorted(peftspace.trainable_parameters(model).items()):
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype) * std)


def hidden(model: nn.Module, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).last_hidden_state


def tuned_minilm(path, design, dtype=torch.float32) -> nn.Module:
    model = backbone(path, dtype)
    peftspace.apply(model, design)
    randomize(model)
    return model.eval()


def hooks_of(module: nn.Module, kinds: tuple[type, ...]) -> list:
    """Forward (pre-)hooks on ``module`` that are bound methods of a ``kinds`` instance."""
    hooks = list(module._forward_hooks.values()) + list(module._forward_pre_hooks.values())
    return [h for h in hooks if isinstance(getattr(h, "__self__", None), kinds)]


def assert_merged_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Within the dtype's tolerance, relative to the output's scale (MiniLM's hidden states reach ~6).

    Folding reorders float sums, so fp32 differs by rounding (~2e-5 absolute on MiniLM); fp64 runs
    of the same cases pin the algebra itself to 1e-10.
    """
    tolerance = MERGE_TOLERANCE[expected.dtype]
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(actual, expected, rtol=tolerance, atol=tolerance * scale)


# -- save / load ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", DESIGNS)
def test_save_then_load_reproduces_outputs_exactly(minilm_path, batch, tmp_path, name):
    model = tuned_minilm(minilm_path, DESIGNS[name])
    expected = hidden(model, batch)
    assert not torch.allclose(expected, hidden(backbone(minilm_path), batch), atol=1e-3), "the design should change outputs"

    peftspace.save(model, tmp_path / "saved")
    restored = peftspace.load(backbone(minilm_path), tmp_path / "saved").eval()

    assert torch.equal(hidden(restored, batch), expected)
    saved, loaded = design_parameters(model), design_parameters(restored)
    assert sorted(saved) == sorted(loaded)
    assert all(torch.equal(saved[key], loaded[key]) for key in saved)
    assert restored.peftspace_plan == model.peftspace_plan


@pytest.mark.parametrize("name", DESIGNS)
def test_saved_directory_holds_only_json_and_safetensors(minilm_path, tmp_path, name):
    model = tuned_minilm(minilm_path, DESIGNS[name])
    directory = peftspace.save(model, tmp_path / "saved")

    files = sorted(p for p in directory.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".json", ".safetensors"}, files
    for path in files:
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
        assert not path.read_bytes().startswith(b"PK"), f"{path.name} looks like a torch.save zip"
    record = json.loads((directory / "peftspace_design.json").read_text())
    assert record["merged"] is False
    assert record["plan"]["family"] == "bert"


def test_load_into_an_eval_backbone_is_deterministic(minilm_path, batch, tmp_path):
    """Loading for inference into an eval-mode backbone must not leave LoRA dropout active."""
    design = Design(strategies=("L",), options=StrategyOptions(lora_dropout=0.1))
    peftspace.save(tuned_minilm(minilm_path, design), tmp_path / "saved")
    restored = peftspace.load(backbone(minilm_path), tmp_path / "saved")  # no .eval() after: the backbone already was

    assert not any(module.training for module in restored.modules())
    assert torch.equal(hidden(restored, batch), hidden(restored, batch))


def test_load_of_mismatched_weights_leaves_the_backbone_untouched(minilm_path, tmp_path):
    peftspace.save(tuned_minilm(minilm_path, "lora"), tmp_path / "lora")
    peftspace.save(tuned_minilm(minilm_path, "bitfit"), tmp_path / "bitfit")
    (tmp_path / "lora" / "peftspace_weights.safetensors").write_bytes((tmp_path / "bitfit" / "peftspace_weights.safetensors").read_bytes())
    fresh = backbone(minilm_path)
    with pytest.raises(ModelError, match="do not match the design"):
        peftspace.load(fresh, tmp_path / "lora")
    assert not any("peftspace_" in name for name, _ in fresh.named_parameters())
    assert all(p.requires_grad for p in fresh.parameters())
    peftspace.load(fresh, tmp_path / "bitfit")  # the same backbone still takes a matching design


def test_load_into_another_backbone_gets_a_clear_error(minilm_path, tmp_path):
    from transformers import BertConfig, BertModel

    peftspace.save(tuned_minilm(minilm_path, "lora"), tmp_path / "lora")
    other = BertModel(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=64))
    with pytest.raises(ModelError, match="another backbone"):
        peftspace.load(other, tmp_path / "lora")
    assert not any("peftspace_" in name for name, _ in other.named_parameters())


# -- merge ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("name", ["mixed", "lora", "bitfit"])
def test_merge_folds_lora_and_bitfit_into_the_backbone(minilm_path, batch, name, dtype):
    model = tuned_minilm(minilm_path, DESIGNS.get(name, name), dtype)
    expected = hidden(model, batch)
    adapters_before = len([m for m in model.modules() if isinstance(m, Adapter)])

    peftspace.merge(model)

    assert_merged_close(hidden(model, batch), expected)
    assert not [m for m in model.modules() if isinstance(m, (LoRA, BiasDelta))]
    for module in model.modules():
        assert not hooks_of(module, (LoRA, BiasDelta)), f"{type(module).__name__} keeps a LoRA/BitFit hook"
        if isinstance(module, nn.Linear) and name != "mixed":  # only the mixed design keeps adapters
            assert not module._forward_hooks and not module._forward_pre_hooks
    assert len([m for m in model.modules() if isinstance(m, Adapter)]) == adapters_before
    assert model.peftspace_merged is True


def tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=128, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
                      relative_attention_num_buckets=8, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    return T5ForConditionalGeneration(config).eval()


def t5_batch() -> dict:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(1, 128, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 6:] = 0
    attention_mask[1, 4:] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "decoder_input_ids": torch.randint(1, 128, (3, 5), generator=generator)}


def t5_logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits


def test_merging_bitfit_on_t5_creates_real_biases():
    model, batch = tiny_t5(), t5_batch()
    peftspace.apply(model, "bitfit")
    randomize(model)
    expected = t5_logits(model, batch)
    projections = [p.module for block in blocks(model) for p in block.projections()]
    assert len(projections) == 2 * 6 + 2 * 10 and all(p.bias is None for p in projections)
    deltas = {id(p): p.peftspace_bitfit.delta.detach().clone() for p in projections}

    peftspace.merge(model)

    for projection in projections:
        assert isinstance(projection.bias, nn.Parameter) and not projection.bias.requires_grad
        assert torch.equal(projection.bias, deltas[id(projection)])
    assert not [m for m in model.modules() if isinstance(m, BiasDelta)]
    assert not any(hooks_of(m, (BiasDelta,)) for m in model.modules())
    assert_merged_close(t5_logits(model, batch), expected)


REPARAMETERIZED = Design(strategies=("P",), budget_fraction=0.1, options=StrategyOptions(prefix_reparameterize=True,
                                                                                         prefix_mlp_hidden=64))


@pytest.mark.parametrize("family", ["bert", "t5"])
def test_merge_folds_reparameterized_prefixes_into_plain_ones(minilm_path, batch, family):
    if family == "bert":
        model, inputs, run = backbone(minilm_path), batch, hidden
    else:
        model, inputs, run = tiny_t5(), t5_batch(), t5_logits
    peftspace.apply(model, REPARAMETERIZED)
    randomize(model, std=0.1)
    model.eval()
    expected = run(model, inputs)
    prefixes = [m for m in model.modules() if isinstance(m, Prefix)]
    assert prefixes and all(p.reparameterized for p in prefixes)
    if family == "t5":
        assert len(prefixes) == 2 + 2 * 2  # cross-attention is prefixed too

    peftspace.merge(model)

    for prefix in prefixes:
        assert not hasattr(prefix, "mlp") and not hasattr(prefix, "embedding")
        shape = (prefix.num_kv_heads, prefix.length, prefix.head_dim)
        assert prefix.keys.shape == shape and prefix.values.shape == shape
    assert_merged_close(run(model, inputs), expected)


def test_a_merged_design_cannot_be_loaded_back(minilm_path, tmp_path):
    model = tuned_minilm(minilm_path, "lora")
    peftspace.save(peftspace.merge(model), tmp_path / "merged")
    with pytest.raises(ModelError, match="merged design"):
        peftspace.load(backbone(minilm_path), tmp_path / "merged")


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("missing", ["peftspace_design.json", "peftspace_weights.safetensors"])
def test_load_from_an_incomplete_directory_names_the_missing_file(minilm_path, tmp_path, missing):
    peftspace.save(tuned_minilm(minilm_path, "lora"), tmp_path / "saved")
    (tmp_path / "saved" / missing).unlink()
    fresh = backbone(minilm_path)

    with pytest.raises(ModelError, match=f"not a saved peftspace design: {missing} is missing"):
        peftspace.load(fresh, tmp_path / "saved")
    assert not hasattr(fresh, "peftspace_plan"), "a failed load must leave the backbone untouched"


def test_load_from_an_empty_directory_is_a_model_error(minilm_path, tmp_path):
    with pytest.raises(ModelError, match="is missing"):
        peftspace.load(backbone(minilm_path), tmp_path)


def test_applying_twice_is_a_design_error(minilm_path):
    model = backbone(minilm_path)
    peftspace.apply(model, "lora")
    with pytest.raises(DesignError, match="already has a peftspace design"):
        peftspace.apply(model, "bitfit")


def test_save_and_merge_need_a_design(minilm_path, tmp_path):
    model = backbone(minilm_path)
    with pytest.raises(ModelError, match="no peftspace design"):
        peftspace.save(model, tmp_path)
    with pytest.raises(ModelError, match="no peftspace design"):
        peftspace.merge(model)
