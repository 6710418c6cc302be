"""Frozen-bottom reuse: serve the hidden states below a design's lowest modified block from a cache.

A design whose lowest modified block is ``k > 0`` leaves the embeddings and blocks ``0..k-1``
pristine and frozen. Autograd already builds no graph for them; what is left to save is their
forward pass, which gives the same states for the same example in every step, epoch and trial on
the same backbone. ``serve(model, store, scope)`` swaps them, for the duration of a ``with`` block,
for a ``FrozenBottom`` that hands the states entering block ``k`` out of a ``BottomStore`` and
computes only the misses; the original modules are back afterwards, so saving is unaffected.

Exactness, and what it costs:
- The bottom runs without dropout (eval mode), hit or miss: a cached state must be the one a
  recomputation gives. Scoring runs in eval mode anyway, so ``frozen_bottom="eval"``
  (serve when scoring) changes nothing but rounding; ``"train"`` serves
  training steps too, so the bottom trains without dropout (opt-in: designs whose lowest tuned
  block differs would then differ in dropout as well); ``"off"`` leaves the model untouched.
- A miss is computed for its example alone, without padding, so a stored state is a function of the
  example only: not of which batch, padding or trial computed it first. A trial's losses and
  metrics are therefore the same whether the store is cold, warm, or too small to hold anything.
  In a padded batch, the real tokens' states equal the unpadded ones (up to rounding) because
  padding is masked as keys; the padded positions get zeros, which nothing reads (pad positions are
  never keys, and heads read real tokens).
- Examples are keyed by their token ids (and token types), so the key holds everything the states
  depend on within a scope (backbone, ``k``, autocast dtype): a task, split, format or truncation
  length that yields the same tokens shares the entry.

Where it applies: families declaring the ``frozen_bottom`` capability on the family map (BERT,
RoBERTa, XLM-R: BERT-like encoders) used with a classification/regression head, padded on the right, where a block's output for one example depends on that example alone and
position ids do not depend on the padding. Not elsewhere, by design: T5 blocks pass a position
bias computed in block 0 to the blocks above, decoders and seq2seq formats mix in targets and
caches, and XLNet's two-stream attention takes more than hidden states between blocks. There
``frozen_layers`` returns 0 and the trial runs as without the cache.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch
from torch import nn

from peftspace.design.errors import ModelError
from peftspace.families import base_model, blocks, family_map
from peftspace.strategies._hooks import PREFIX


class BottomStore:
    """Frozen-bottom states by (scope, tokens), fp32 on the device that computed them, at most ``max_bytes`` of them.

    When full, it stops adding rather than evicting: epochs and trials revisit the same examples
    in cycles, where least-recently-used eviction would drop every entry just before its reuse.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes, self.used_bytes = max_bytes, 0
        self._states: dict[tuple, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: tuple) -> torch.Tensor | None:
        return self._states.get(key)

    def add(self, key: tuple, states: torch.Tensor) -> bool:
        """Keep ``states`` (length x hidden) under ``key`` if they fit; whether they were kept."""
        size = states.numel() * 4 + sum(len(part) for part in key if isinstance(part, bytes))
        if key in self._states or self.used_bytes + size > self.max_bytes:
            return False
        self._states[key] = states.detach().to(dtype=torch.float32, copy=True)
        self.used_bytes += size
        return True


def frozen_layers(model: nn.Module, fmt) -> int:
    """``k``: how many bottom blocks (with the embeddings) ``serve`` can take over; 0 where it does not apply.

    Modified means holding a trainable parameter or a strategy module (``peftspace_*``), read from the
    model rather than the plan: a weight the checkpoint lacked (drawn per trial and trained like the
    head) makes its block, or the embeddings, modified too.
    """
    from peftspace.formats import HeadFormat

    config = model.config
    if (not family_map(config).can("frozen_bottom") or not isinstance(fmt, HeadFormat) or getattr(config, "is_decoder", False)
            or getattr(fmt.tokenizer, "padding_side", "right") != "right"):
        return 0
    if any(p.requires_grad for p in base_model(model).embeddings.parameters()):
        return 0
    for block in blocks(model):
        if any(p.requires_grad for p in block.module.parameters()) or any(
                name.rpartition(".")[2].startswith(PREFIX) for name, _ in block.module.named_modules()):
            return block.index
    return 0  # nothing modified in any block: the design trains only the head; keep the plain path


class FrozenBottom(nn.Module):
    """Stands in for a BERT-like model's embeddings: returns the states entering block ``k``.

    The real embeddings and blocks ``0..k-1`` stay in eval mode whatever the model's mode
    (``train`` does not reach them). ``attention_mask`` is set by a pre-hook on the base model
    before each forward pass; ``hits`` and ``misses`` count examples served.
    """

    def __init__(self, embeddings: nn.Module, bottom: list[nn.Module], store: BottomStore, scope: tuple):
        super().__init__()
        self.embeddings, self.bottom = embeddings, nn.ModuleList(bottom)
        self.store, self.scope = store, scope
        self.attention_mask: torch.Tensor | None = None
        self.hits = self.misses = 0

    def train(self, mode: bool = True):
        self.training = mode  # and not the frozen modules: they run deterministically in both modes
        return self

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, **kwargs):
        if input_ids is None or inputs_embeds is not None or position_ids is not None or kwargs.get("cache_length", 0):
            raise ModelError("the frozen-bottom cache serves input_ids with default positions and no key/value cache; "
                             "run with frozen_bottom='off' for anything else")
        batch, width = input_ids.shape
        mask = torch.ones_like(input_ids) if self.attention_mask is None else self.attention_mask
        lengths = mask.sum(1)
        if not torch.equal(mask.bool(), torch.arange(width, device=mask.device) < lengths[:, None]):
            raise ModelError("the frozen-bottom cache needs right padding (attention mask ones, then zeros, in every row); "
                             "run with frozen_bottom='off' for left-padded batches")
        ids, types = input_ids.cpu(), None if token_type_ids is None else token_type_ids.cpu()
        dtype = next(self.embeddings.parameters()).dtype
        served = torch.zeros(batch, width, self.embeddings.word_embeddings.embedding_dim, dtype=dtype, device=input_ids.device)
        for row, length in enumerate(lengths.tolist()):
            key = (*self.scope, ids[row, :length].numpy().tobytes(),
                   b"" if types is None else types[row, :length].numpy().tobytes())
            states = self.store.get(key)
            if states is None:
                self.misses += 1
                states = self._compute(input_ids[row:row + 1, :length],
                                       None if token_type_ids is None else token_type_ids[row:row + 1, :length])
                self.store.add(key, states)
            else:
                self.hits += 1
            served[row, :length] = states
        return served.to(input_ids.device)

    @torch.no_grad()
    def _compute(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """One unpadded example through the real embeddings and bottom blocks: (length, hidden)."""
        hidden = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        for block in self.bottom:
            hidden = block(hidden, None)  # no padding: every token attends to every token
        return hidden[0].float().cpu()


@contextmanager
def serve(model: nn.Module, layers: int, store: BottomStore, scope: tuple):
    """Within the block, ``model`` takes the states entering block ``layers`` from ``store``.

    Yields the ``FrozenBottom`` (its ``hits``/``misses``), or ``None`` when ``layers`` is 0 and
    nothing changes. On exit the embeddings, the block list and the modules' train/eval mode (the
    model's current one) are restored and the pre-hook removed.
    """
    if layers == 0:
        yield None
        return
    base = base_model(model)
    encoder_blocks = base.encoder.layer
    assert [b.module for b in blocks(model)] == list(encoder_blocks), "BERT-like: the blocks are encoder.layer"
    embeddings = base.embeddings
    bottom = FrozenBottom(embeddings, list(encoder_blocks[:layers]), store, scope)
    bottom.embeddings.eval()
    bottom.bottom.eval()
    bottom.training = model.training
    parameters = inspect.signature(base.forward).parameters

    def capture_mask(module, args, kwargs):
        bound = dict(zip(parameters, args)) | kwargs
        bottom.attention_mask = bound.get("attention_mask")

    handle = base.register_forward_pre_hook(capture_mask, with_kwargs=True)
    base.embeddings, base.encoder.layer = bottom, nn.ModuleList(encoder_blocks[layers:])
    try:
        yield bottom
    finally:
        handle.remove()
        base.embeddings, base.encoder.layer = embeddings, encoder_blocks
        embeddings.train(bottom.training)
        for block in encoder_blocks[:layers]:
            block.train(bottom.training)
