"""Where the blocks, attention projections, FFN and norms live in each backbone family.

One small map per family defines the global layer index (encoder blocks, then decoder blocks)
and every module the strategies touch. Paths are relative to a block; ``path#i/n`` names the
i-th of n equal output slices of a fused projection (GPT-2's ``c_attn``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from peftspace.design.backbone import AttentionSpec, BackboneSpec, LayerSpec, LinearSpec
from peftspace.design.errors import ModelError


@dataclass(frozen=True)
class AttentionMap:
    kind: str  # "self" or "cross"
    module: str  # the module that calls the attention interface (where prefixes go)
    q: str
    k: str
    v: str
    o: str


@dataclass(frozen=True)
class StackMap:
    name: str  # "encoder" or "decoder"
    blocks: str  # ModuleList of blocks, relative to the base model
    attentions: tuple[AttentionMap, ...]
    ffn_in: tuple[str, ...]  # missing paths are skipped (T5 v1.1 and gated FFNs differ)
    ffn_out: str
    ffn_module: str  # its input is the FFN's input (parallel adapters read it)
    norms: tuple[str, ...] = ()


def _bert_like(blocks: str, projection: str = "{}") -> tuple[StackMap, ...]:
    q, k, v = (f"attention.self.{projection.format(role)}" for role in ("query", "key", "value"))
    attention = AttentionMap("self", "attention.self", q, k, v, "attention.output.dense")
    return (StackMap("encoder", blocks, (attention,), ("intermediate.dense",), "output.dense", "intermediate",
                     ("attention.output.LayerNorm", "output.LayerNorm")),)


def _t5_attention(kind: str, index: int) -> AttentionMap:
    name = "SelfAttention" if kind == "self" else "EncDecAttention"
    base = f"layer.{index}.{name}"
    return AttentionMap(kind, base, f"{base}.q", f"{base}.k", f"{base}.v", f"{base}.o")


def _t5_stack(name: str, ffn_index: int) -> StackMap:
    attentions = (_t5_attention("self", 0),) + ((_t5_attention("cross", 1),) if name == "decoder" else ())
    ffn = f"layer.{ffn_index}.DenseReluDense"
    return StackMap(name, f"{name}.block", attentions, (f"{ffn}.wi", f"{ffn}.wi_0", f"{ffn}.wi_1"), f"{ffn}.wo", ffn)


def _bart_stack(name: str) -> StackMap:
    def attention(kind, module):
        return AttentionMap(kind, module, f"{module}.q_proj", f"{module}.k_proj", f"{module}.v_proj", f"{module}.out_proj")

    attentions = (attention("self", "self_attn"),)
    norms = ("self_attn_layer_norm", "final_layer_norm")
    if name == "decoder":
        attentions += (attention("cross", "encoder_attn"),)
        norms += ("encoder_attn_layer_norm",)
    return StackMap(name, f"{name}.layers", attentions, ("fc1",), "fc2", "fc1", norms)


def _single_stack(blocks: str, attention: str, q: str, k: str, v: str, o: str, ffn_in: tuple[str, ...], ffn_out: str,
                  ffn_module: str, norms: tuple[str, ...], name: str = "encoder") -> tuple[StackMap, ...]:
    return (StackMap(name, blocks, (AttentionMap("self", attention, f"{attention}.{q}", f"{attention}.{k}", f"{attention}.{v}",
                                                 f"{attention}.{o}"),), ffn_in, ffn_out, ffn_module, norms),)


KINDS = ("encoder", "seq2seq", "decoder")  # each kind's default format: head, text-to-text, label-scoring
CAPABILITIES = {
    "prefix": "prefixes reach the attention (through transformers' attention interface, or the family's own code)",
    "fast_attention_dropout": "encoder self-attention through the attention interface, no causal mask, no position bias "
                              "(peftspace.dropout)",
    "frozen_bottom": "a BERT-like encoder whose blocks take hidden states and the extended mask alone, below an "
                     "``embeddings`` module (peftspace.frozen_bottom)",
    "packing": "BERT-like sequence classification whose heads read the pooled output (peftspace.packing)",
}


@dataclass(frozen=True)
class Family:
    """A backbone family: its stacks of blocks, its kind and what the speed-ups may assume of it.

    ``capabilities`` are names from ``CAPABILITIES``; a family without ``"prefix"`` gets a clear
    error when a design asks for prefixes (``prefix_note`` says why). ``optional_stacks`` may be
    missing from a model (the decoder of ``T5EncoderModel``).
    """

    name: str
    stacks: tuple[StackMap, ...]
    kind: str = "encoder"
    capabilities: frozenset[str] = frozenset({"prefix"})
    optional_stacks: tuple[str, ...] = ()
    prefix_note: str = ""

    def __post_init__(self):
        problems = []
        if self.kind not in KINDS:
            problems.append(f"kind {self.kind!r} is not one of {list(KINDS)}")
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            problems.append(f"unknown capabilities {unknown}; known: {sorted(CAPABILITIES)}")
        if not self.stacks:
            problems.append("a family needs at least one stack of blocks")
        if problems:
            raise ModelError(f"family {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    def can(self, capability: str) -> bool:
        if capability not in CAPABILITIES:
            raise ModelError(f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}")
        return capability in self.capabilities


_BERT_SPEEDUPS = frozenset({"prefix", "fast_attention_dropout", "frozen_bottom", "packing"})
_DEBERTA_PREFIX = ("DeBERTa's disentangled attention adds content-to-position and position-to-content scores of its own "
                   "and does not go through transformers' attention interface, so prefixes cannot be placed; "
                   "use adapters (A), BitFit (B) or LoRA (L)")
XLNET = StackMap("encoder", "layer", (AttentionMap("self", "rel_attn", "q", "k", "v", "o"),), ("ff.layer_1",), "ff.layer_2", "ff",
                 ("rel_attn.layer_norm", "ff.layer_norm"))  # q/k/v/o: see peftspace.xlnet
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("bert", _bert_like("encoder.layer"), capabilities=_BERT_SPEEDUPS),
    Family("t5", (_t5_stack("encoder", 1), _t5_stack("decoder", 2)), "seq2seq", optional_stacks=("decoder",)),
    Family("bart", (_bart_stack("encoder"), _bart_stack("decoder")), "seq2seq", optional_stacks=("decoder",)),
    Family("gpt2", _single_stack("h", "attn", "c_attn#0/3", "c_attn#1/3", "c_attn#2/3", "c_proj", ("mlp.c_fc",), "mlp.c_proj", "mlp",
                                 ("ln_1", "ln_2"), "decoder"), "decoder"),
    Family("llama", _single_stack("layers", "self_attn", "q_proj", "k_proj", "v_proj", "o_proj", ("mlp.gate_proj", "mlp.up_proj"),
                                  "mlp.down_proj", "mlp", ("input_layernorm", "post_attention_layernorm"), "decoder"), "decoder"),
    Family("xlnet", (XLNET,)),
    Family("distilbert", _single_stack("transformer.layer", "attention", "q_lin", "k_lin", "v_lin", "out_lin", ("ffn.lin1",),
                                       "ffn.lin2", "ffn", ("sa_layer_norm", "output_layer_norm")),
           capabilities=frozenset({"prefix", "fast_attention_dropout"})),
    Family("deberta-v2", _bert_like("encoder.layer", "{}_proj"), capabilities=frozenset(), prefix_note=_DEBERTA_PREFIX),
    Family("modernbert", _single_stack("layers", "attn", "Wqkv#0/3", "Wqkv#1/3", "Wqkv#2/3", "Wo", ("mlp.Wi",), "mlp.Wo", "mlp",
                                       ("attn_norm", "mlp_norm"))),
)}
MODEL_TYPES: dict[str, str] = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "t5": "t5", "mt5": "t5", "bart": "bart", "mbart": "bart",
    "gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama", "qwen3": "llama", "gemma3_text": "llama", "xlnet": "xlnet",
    "distilbert": "distilbert", "deberta-v2": "deberta-v2", "modernbert": "modernbert",
}


def register(model_type: str, family: Family | str, replace: bool = False) -> Family:
    """Let peftspace handle backbones whose ``config.model_type`` is ``model_type``.

    ``family`` is either the name of a known family whose module layout the new model type shares
    (``register("camembert", "bert")``), or a new ``Family`` saying where its blocks, attention
    projections, FFN and norms live. Registering a model type or a family name that exists already
    is an error unless ``replace``. Returns the family the model type now maps to.
    """
    if isinstance(family, str):
        if family not in FAMILIES:
            raise ModelError(f"unknown family {family!r}; known families: {sorted(FAMILIES)}, or pass a peftspace.families.Family")
        family = FAMILIES[family]
    elif not isinstance(family, Family):
        raise ModelError(f"family must be a family name or a peftspace.families.Family, got {type(family).__name__}")
    elif family.name in FAMILIES and FAMILIES[family.name] != family and not replace:
        raise ModelError(f"a different family named {family.name!r} exists already; pick another name or pass replace=True")
    if MODEL_TYPES.get(model_type, family.name) != family.name and not replace:
        raise ModelError(f"model type {model_type!r} maps to the {MODEL_TYPES[model_type]!r} family already; pass replace=True "
                         f"to map it to {family.name!r}")
    FAMILIES[family.name] = family
    MODEL_TYPES[model_type] = family.name
    return family


def family_map(config_or_name) -> Family:
    """The ``Family`` of a config (by its ``model_type``) or of a family name."""
    return FAMILIES[config_or_name if isinstance(config_or_name, str) else family_of(config_or_name)]


@dataclass
class Projection:
    """A linear(-like) module, or one output slice of a fused one, playing ``role``."""

    role: str
    module: nn.Module
    out_slice: slice | None
    in_features: int
    out_features: int

    @property
    def has_bias(self) -> bool:
        return getattr(self.module, "bias", None) is not None


@dataclass
class Attention:
    kind: str
    module: nn.Module
    projections: dict[str, Projection]
    num_kv_heads: int
    head_dim: int
    uses_attention_interface: bool = True  # False: the family's own attention takes prefixes (XLNet)


@dataclass
class Block:
    """One transformer block with handles on everything a strategy may touch."""

    index: int
    stack: str
    module: nn.Module
    hidden_size: int
    attentions: list[Attention]
    ffn: list[Projection]
    ffn_module: nn.Module
    norms: list[nn.Module] = field(default_factory=list)

    def projections(self) -> list[Projection]:
        return [p for a in self.attentions for p in a.projections.values()] + self.ffn

    def bias_modules(self) -> list[nn.Module]:
        """Every module BitFit trains a bias of (a fused projection once), norms with a bias last."""
        unique: dict[int, nn.Module] = {}
        for p in self.projections():
            unique.setdefault(id(p.module), p.module)
        return list(unique.values()) + [n for n in self.norms if getattr(n, "bias", None) is not None]

    def spec(self) -> LayerSpec:
        return LayerSpec(
            index=self.index, stack=self.stack, hidden_size=self.hidden_size,
            attentions=tuple(
                AttentionSpec(a.kind, a.num_kv_heads * a.head_dim, tuple(_linear_spec(p) for p in a.projections.values()))
                for a in self.attentions),
            ffn=tuple(_linear_spec(p) for p in self.ffn),
            norm_bias_sizes=tuple(n.bias.numel() for n in self.norms if getattr(n, "bias", None) is not None),
        )


PLUGIN_GROUP = "peftspace.families"  # entry points called once, at the first unknown model type
_plugins_loaded: list[str] | None = None


def family_of(config) -> str:
    model_type = getattr(config, "model_type", None)
    if model_type not in MODEL_TYPES and _plugins_loaded is None:
        load_plugins()
    if model_type not in MODEL_TYPES:
        raise ModelError(f"model type {model_type!r} is not supported; peftspace knows {sorted(MODEL_TYPES)}. "
                         f"Map it with peftspace.families.register(...), in the process itself or, for the CLI and "
                         f"sweep workers, from a {PLUGIN_GROUP!r} entry point")
    return MODEL_TYPES[model_type]


def load_plugins() -> list[str]:
    """Call every installed ``peftspace.families`` entry point (a function that calls ``register``); their names.

    A package declares one in its metadata, e.g. in ``pyproject.toml``::

        [project.entry-points."peftspace.families"]
        mpnet = "my_package.peftspace_families:register_all"
    """
    global _plugins_loaded
    from importlib.metadata import entry_points

    _plugins_loaded = []
    for point in entry_points(group=PLUGIN_GROUP):
        try:
            point.load()()
        except Exception as error:  # a broken plugin must say which it is
            raise ModelError(f"the {PLUGIN_GROUP!r} entry point {point.name!r} ({point.value}) failed: {error!r}") from error
        _plugins_loaded.append(point.name)
    return list(_plugins_loaded)


def base_model(model: nn.Module) -> nn.Module:
    """The backbone without task heads (``BertForSequenceClassification`` -> its ``bert``)."""
    return getattr(model, "base_model", model)


def blocks(model: nn.Module, prepare: bool = False) -> list[Block]:
    """Every block of ``model`` in global order: encoder blocks first, then decoder blocks.

    ``prepare`` lets families that need it (XLNet) install what injection relies on; without it
    the model is left untouched.
    """
    family, backbone = family_map(model.config), base_model(model)
    if family.name == "xlnet":
        return [_xlnet_block(i, block, prepare) for i, block in enumerate(backbone.get_submodule(XLNET.blocks))]
    found = []
    for stack in family.stacks:
        try:
            module_list = backbone.get_submodule(stack.blocks)
        except AttributeError:
            if stack.name in family.optional_stacks:
                continue  # encoder-only variants (T5EncoderModel)
            raise ModelError(f"{type(model).__name__} has no {stack.blocks!r}; is it really a {family.name} model?") from None
        for block_module in module_list:
            found.append(_block(len(found), stack, block_module))
    return found


def backbone_parameters(model: nn.Module) -> int:
    """Parameters of the backbone without heads, tied weights once, peftspace's own excluded.

    Where the model is its own base (T5 and mT5 keep ``encoder``, ``decoder`` and ``lm_head`` side by
    side), an LM head that is not the input embeddings (T5 v1.1, flan-t5, mT5 checkpoints) is a head
    too: excluded, as ``meta_model``'s bare backbone has none and sweeps plan from it.
    """
    backbone = base_model(model)
    head = set()
    output_embeddings = backbone.get_output_embeddings() if hasattr(backbone, "get_output_embeddings") else None
    if output_embeddings is not None:
        shared = {id(p) for p in backbone.get_input_embeddings().parameters()}
        head = {id(p) for p in output_embeddings.parameters()} - shared
    return sum(p.numel() for name, p in backbone.named_parameters() if "peftspace_" not in name and id(p) not in head)


def backbone_spec(model_or_config) -> BackboneSpec:
    """The torch-free description the design layer plans with; configs are built on meta."""
    model = model_or_config if isinstance(model_or_config, nn.Module) else meta_model(model_or_config)
    family = family_map(model.config)
    unavailable = () if family.can("prefix") else (("P", family.prefix_note or "its family map does not declare 'prefix'"),)
    return BackboneSpec(family=family.name, model_type=model.config.model_type, num_parameters=backbone_parameters(model),
                        layers=tuple(b.spec() for b in blocks(model)), unavailable=unavailable)


def meta_model(config) -> nn.Module:
    """The bare backbone of ``config`` on the meta device: shapes without weights."""
    from transformers import AutoModel

    family_of(config)
    with torch.device("meta"):
        return AutoModel.from_config(config)


def _block(index: int, stack: StackMap, module: nn.Module) -> Block:
    attentions = []
    for amap in stack.attentions:
        attention_module = module.get_submodule(amap.module)
        projections = {role: _projection(module, role, getattr(amap, role)) for role in ("q", "k", "v", "o")}
        head_dim = next((getattr(attention_module, a) for a in ("head_dim", "attention_head_size", "key_value_proj_dim")
                         if isinstance(getattr(attention_module, a, None), int)), None)
        if head_dim is None:
            raise ModelError(f"cannot find the head dimension of {type(attention_module).__name__}")
        attentions.append(Attention(amap.kind, attention_module, projections,
                                    projections["k"].out_features // head_dim, head_dim))
    ffn = [_projection(module, "ffn_in", path) for path in stack.ffn_in if _has(module, path)]
    ffn.append(_projection(module, "ffn_out", stack.ffn_out))
    norms = [module.get_submodule(path) for path in stack.norms]
    return Block(index, stack.name, module, attentions[0].projections["q"].in_features, attentions, ffn,
                 module.get_submodule(stack.ffn_module), norms)


def _xlnet_block(index: int, module: nn.Module, prepare: bool) -> Block:
    from peftspace import xlnet

    attention = module.rel_attn
    shims = xlnet.shims(attention, attach=prepare)
    projections = {role: Projection(role, shim, None, shim.in_features, shim.out_features) for role, shim in shims.items()}
    ffn = [_projection(module, "ffn_in", XLNET.ffn_in[0]), _projection(module, "ffn_out", XLNET.ffn_out)]
    return Block(index, "encoder", module, attention.d_model, [Attention("self", attention, projections, attention.n_head,
                                                                       attention.d_head, uses_attention_interface=False)],
                 ffn, module.get_submodule(XLNET.ffn_module), [module.get_submodule(p) for p in XLNET.norms])


def _projection(block: nn.Module, role: str, path: str) -> Projection:
    path, _, part = path.partition("#")
    module = block.get_submodule(path)
    in_features, out_features = linear_shape(module)
    if not part:
        return Projection(role, module, None, in_features, out_features)
    i, n = map(int, part.split("/"))
    width = out_features // n
    return Projection(role, module, slice(i * width, (i + 1) * width), in_features, width)


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(in, out) of an ``nn.Linear`` or a GPT-2 style ``Conv1D`` (weight stored as in x out)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D":
        return module.weight.shape[0], module.weight.shape[1]
    if type(module).__name__ == "EinsumProjection":
        return module.in_features, module.out_features
    raise ModelError(f"expected a linear projection, found {type(module).__name__}")


def is_transposed(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D"


def _has(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
        return True
    except AttributeError:
        return False


def _linear_spec(p: Projection) -> LinearSpec:
    return LinearSpec(p.role, p.in_features, p.out_features, p.has_bias)
