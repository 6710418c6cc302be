"""Tiny randomly initialized backbones of every supported family, built from config classes."""

from __future__ import annotations

import torch
from transformers import (BartConfig, BartForConditionalGeneration, BertConfig, BertForSequenceClassification, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaModel, T5Config,
                          T5ForConditionalGeneration, XLNetConfig, XLNetForSequenceClassification)

VOCAB = 120


def _bert():
    return BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=48, num_hidden_layers=4, num_attention_heads=4,
                                                    intermediate_size=96, num_labels=3))


def _roberta():
    return RobertaModel(RobertaConfig(vocab_size=VOCAB, hidden_size=48, num_hidden_layers=4, num_attention_heads=4,
                                      intermediate_size=96, max_position_embeddings=64))


def _t5():  # gated FFN (T5 v1.1 style) on purpose: wi_0/wi_1
    return T5ForConditionalGeneration(T5Config(vocab_size=VOCAB, d_model=48, d_kv=12, d_ff=96, num_layers=3, num_decoder_layers=3,
                                               num_heads=4, feed_forward_proj="gated-gelu", decoder_start_token_id=0))


def _bart():
    return BartForConditionalGeneration(BartConfig(vocab_size=VOCAB, d_model=48, encoder_layers=2, decoder_layers=2,
                                                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=96,
                                                   decoder_ffn_dim=96, max_position_embeddings=64))


def _gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=48, n_layer=4, n_head=4, n_positions=64,
                                      bos_token_id=1, eos_token_id=2))


def _llama():  # grouped-query attention on purpose: 4 query heads, 2 key/value heads
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=2))


def _xlnet():
    return XLNetForSequenceClassification(XLNetConfig(vocab_size=VOCAB, d_model=48, n_layer=4, n_head=4, d_inner=96, num_labels=2))


BUILDERS = {"bert": _bert, "roberta": _roberta, "t5": _t5, "bart": _bart, "gpt2": _gpt2, "llama": _llama, "xlnet": _xlnet}


def build(family: str, seed: int = 0):
    torch.manual_seed(seed)
    return BUILDERS[family]().eval()


def inputs(family: str, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in the second row
    batch = {"input_ids": ids, "attention_mask": mask}
    if family in ("t5", "bart"):
        batch["decoder_input_ids"] = torch.randint(3, VOCAB, (2, 5), generator=generator)
    return batch


def output(model, batch) -> torch.Tensor:
    result = model(**batch)
    return result.logits if hasattr(result, "logits") else result.last_hidden_state
