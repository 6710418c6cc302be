"""``peftspace.families.register``: new model types, new family maps, and the speed-ups reading capabilities."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from transformers import (BertConfig, BertForSequenceClassification, CamembertConfig, CamembertForSequenceClassification,
                          MPNetConfig, MPNetModel)

import peftspace
from peftspace import Design
from peftspace.design.errors import DesignError, ModelError
from peftspace.families import FAMILIES, MODEL_TYPES, AttentionMap, Family, StackMap, register
from tiny_models import perturb

LORA_ADAPTER_BITFIT = Design(grouping="uniform", num_groups=2, allocation="increasing", strategies=("ABL", "BL"), budget_fraction=0.2)
MPNET = Family("mpnet", (StackMap("encoder", "encoder.layer", (AttentionMap("self", "attention.attn", "attention.attn.q", "attention.attn.k",
                                                                            "attention.attn.v", "attention.attn.o"),),
                                  ("intermediate.dense",), "output.dense", "intermediate", ("attention.LayerNorm", "output.LayerNorm")),),
               capabilities=frozenset(), prefix_note="MPNet's attention adds its relative position bias in its own code")


@pytest.fixture(autouse=True)
def registry():
    """Each test starts from the built-in maps and leaves them as they were."""
    families, model_types = dict(FAMILIES), dict(MODEL_TYPES)
    yield
    FAMILIES.clear(), FAMILIES.update(families)
    MODEL_TYPES.clear(), MODEL_TYPES.update(model_types)


def _camembert():
    torch.manual_seed(0)
    return CamembertForSequenceClassification(CamembertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                                              intermediate_size=64, max_position_embeddings=40, num_labels=2)).eval()


def _mpnet():
    torch.manual_seed(0)
    return MPNetModel(MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=40)).eval()


def _batch():
    ids = torch.randint(3, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _out(model, batch):
    result = model(**batch)
    return result.logits if hasattr(result, "logits") else result.last_hidden_state


def test_an_unknown_model_type_is_refused_until_registered():
    with pytest.raises(ModelError, match="'camembert' is not supported"):
        peftspace.plan(_camembert(), "lora")
    assert peftspace.families.register("camembert", "bert") is FAMILIES["bert"]  # reachable from a plain `import peftspace`
    model = _camembert()
    plan = peftspace.apply(model, Design(strategies=("L",), budget_fraction=0.1))
    assert plan.family == "bert"
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == plan.training_total


def test_a_new_family_map_gets_exact_counts_no_op_and_save_load(tmp_path):
    register("mpnet", MPNET)
    model, batch = _mpnet(), _batch()
    with torch.no_grad():
        frozen = _out(model, batch)
    plan = peftspace.apply(model, LORA_ADAPTER_BITFIT)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and trainable == {name for name, _ in model.named_parameters() if "peftspace_" in name}
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == plan.training_total
    assert plan.backbone_parameters == sum(p.numel() for name, p in model.named_parameters() if "peftspace_" not in name)
    with torch.no_grad():
        assert torch.allclose(_out(model, batch), frozen, atol=1e-6, rtol=0)
    perturb(model)
    with torch.no_grad():
        tuned = _out(model, batch)
    assert not torch.allclose(tuned, frozen, atol=1e-4)
    peftspace.save(model, tmp_path)
    with torch.no_grad():
        assert torch.equal(_out(peftspace.load(_mpnet(), tmp_path), batch), tuned)


def test_a_family_without_prefixes_says_why_before_changing_the_model():
    register("mpnet", MPNET)
    model = _mpnet()
    with pytest.raises(DesignError, match="prefix .P. is not available on this mpnet backbone: .*relative position bias"):
        peftspace.apply(model, Design(strategies=("AP",), budget_fraction=0.1))
    assert all(p.requires_grad for p in model.parameters())
    plan = peftspace.plan(model, Design(strategies=("A",), budget_fraction=0.1))
    edited = replace(plan, layers=tuple(replace(layer, sizes={**layer.sizes, "P": 2}) for layer in plan.layers))  # a hand-edited file
    with pytest.raises(ModelError, match="prefix tuning .P. is not available on the mpnet family .mpnet., asked for in layers \\[0, 1, 2, 3\\]"):
        peftspace.apply(model, edited)
    assert all(p.requires_grad for p in model.parameters())


def test_registration_errors_name_what_exists():
    with pytest.raises(ModelError, match="unknown family 'bertt'.*'bert'"):
        register("camembert", "bertt")
    with pytest.raises(ModelError, match="'roberta' maps to the 'bert' family already"):
        register("roberta", "t5")
    with pytest.raises(ModelError, match="a different family named 'bert' exists"):
        register("mpnet", Family("bert", MPNET.stacks))
    with pytest.raises(ModelError, match="unknown capabilities \\['packed'\\]"):
        Family("mine", MPNET.stacks, capabilities=frozenset({"packed"}))
    with pytest.raises(ModelError, match="kind 'causal' is not one of"):
        Family("mine", MPNET.stacks, kind="causal")
    assert "mpnet" not in MODEL_TYPES and "mpnet" not in FAMILIES  # nothing half-registered
    register("roberta", "t5", replace=True)
    assert MODEL_TYPES["roberta"] == "t5"


def test_the_default_format_follows_the_declared_kind():
    from peftspace.formats import default_format

    register("mpnet", MPNET)
    assert default_format("mpnet") == "head"
    register("mpnet-decoder", Family("mpnet-decoder", MPNET.stacks, kind="decoder"))
    assert default_format("mpnet-decoder") == "label-scoring"
    assert default_format("t5") == "text-to-text"


def _bert():
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                    intermediate_size=64, num_labels=2, problem_type="single_label_classification"))


@pytest.mark.parametrize("declared", [True, False], ids=["bert-capabilities", "none-declared"])
def test_the_speed_ups_read_the_capabilities_of_the_family_map(declared):
    """The same BERT modules: the speed-ups apply when the family declares them, and only then."""
    from peftspace.dropout import FastDropout, use_fast_dropout
    from peftspace.formats import HeadFormat
    from peftspace.frozen_bottom import frozen_layers
    from peftspace.packing import PackingError, _check_model

    # by the capabilities, not the name: "bert" itself loses them, a family of another name gets them
    stacks, capabilities = FAMILIES["bert"].stacks, FAMILIES["bert"].capabilities
    register("bert", Family("bert-fast", stacks, capabilities=capabilities) if declared else Family("bert", stacks), replace=True)
    model = _bert()
    peftspace.apply(model, Design(tuned_groups=(1,), num_groups=2, grouping="uniform", strategies=("L",), budget_fraction=0.05))
    fmt = HeadFormat.__new__(HeadFormat)
    fmt.tokenizer = SimpleNamespace(padding_side="right")
    assert frozen_layers(model, fmt) == (2 if declared else 0)  # groups [0, 1] and [2]: block 2 is the lowest tuned
    dropouts = sum(1 for m in model.modules() if type(m) is torch.nn.Dropout)
    swapped = use_fast_dropout(model)
    assert sum(1 for m in model.modules() if isinstance(m, FastDropout)) == dropouts
    assert swapped == dropouts + (3 if declared else 0)  # one attention implementation per block, when declared
    if declared:
        _check_model(model)
    else:
        with pytest.raises(PackingError, match="the bert family .bert. cannot be packed yet; packing supports \\[\\]"):
            _check_model(model)


def test_an_entry_point_registers_a_family_for_the_cli(tmp_path):
    """A package's ``peftspace.families`` entry point is called at the first unknown model type: the CLI plans MPNet."""
    import os
    import subprocess
    import sys

    MPNetConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=40).save_pretrained(tmp_path / "mpnet")
    plugin = tmp_path / "plugin"
    (plugin / "my_families-1.0.dist-info").mkdir(parents=True)
    (plugin / "my_families-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-families\nVersion: 1.0\n")
    (plugin / "my_families-1.0.dist-info" / "entry_points.txt").write_text("[peftspace.families]\nmpnet = my_families:register_all\n")
    (plugin / "my_families.py").write_text(
        "from peftspace.families import AttentionMap, Family, StackMap, register\n\n\n"
        "def register_all():\n"
        "    attention = AttentionMap('self', 'attention.attn', *(f'attention.attn.{r}' for r in 'qkvo'))\n"
        "    register('mpnet', Family('mpnet', (StackMap('encoder', 'encoder.layer', (attention,), ('intermediate.dense',), "
        "'output.dense', 'intermediate', ('attention.LayerNorm', 'output.LayerNorm')),), capabilities=frozenset()))\n")
    env = dict(os.environ, PYTHONPATH=str(plugin), HF_HUB_OFFLINE="1", COLUMNS="200")
    command = [sys.executable, "-m", "peftspace.cli", "plan", "--model", str(tmp_path / "mpnet"), "--design", "lora", "--budget", "0.05"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mpnet" in result.stdout
    without = subprocess.run(command, env=dict(env, PYTHONPATH=""), capture_output=True, text=True, timeout=300)
    assert without.returncode != 0 and "'mpnet' is not supported" in without.stdout + without.stderr
