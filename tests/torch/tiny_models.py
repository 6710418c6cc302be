"""Tiny randomly initialized backbones of every supported family, built from config classes."""

from __future__ import annotations

import torch
from transformers import (BartConfig, BartForConditionalGeneration, BertConfig, BertForSequenceClassification, DebertaV2Config,
                          DebertaV2ForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification, Gemma3ForCausalLM,
                          Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, ModernBertConfig,
                          ModernBertForSequenceClassification, MT5Config, MT5ForConditionalGeneration, Qwen3Config, Qwen3ForCausalLM, RobertaConfig, RobertaModel, T5Config,
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


def _untie_lm_head(model):
    """What ``from_pretrained`` leaves for T5 v1.1 / flan-t5 / mT5 checkpoints: an LM head of its own.

    transformers 5 forces ``tie_word_embeddings=True`` on T5 and mT5 configs, but does not tie when a
    checkpoint holds ``lm_head.weight`` and ``shared.weight`` with different values (as those do).
    """
    model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone().normal_(0, 1.0))
    assert model.lm_head.weight is not model.shared.weight
    return model


def _t5_untied():  # T5 v1.1 / flan-t5: gated-gelu, no output scaling, an untied LM head
    return _untie_lm_head(T5ForConditionalGeneration(T5Config(
        vocab_size=VOCAB, d_model=48, d_kv=12, d_ff=96, num_layers=3, num_decoder_layers=2, num_heads=4,
        feed_forward_proj="gated-gelu", tie_word_embeddings=False, decoder_start_token_id=0)))


def _mt5():
    return _untie_lm_head(MT5ForConditionalGeneration(MT5Config(vocab_size=VOCAB, d_model=48, d_kv=12, d_ff=96, num_layers=2,
                                                                num_decoder_layers=2, num_heads=4, decoder_start_token_id=0)))


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


def _distilbert():
    return DistilBertForSequenceClassification(DistilBertConfig(vocab_size=VOCAB, dim=48, n_layers=4, n_heads=4, hidden_dim=96,
                                                                max_position_embeddings=64, num_labels=3))


def _deberta_v2():  # DeBERTa-v3 style: relative attention in both directions over shared, bucketed position keys
    return DebertaV2ForSequenceClassification(DebertaV2Config(
        vocab_size=VOCAB, hidden_size=48, num_hidden_layers=4, num_attention_heads=4, intermediate_size=96, max_position_embeddings=64,
        relative_attention=True, position_buckets=8, pos_att_type=["p2c", "c2p"], share_att_key=True, norm_rel_ebd="layer_norm",
        position_biased_input=False, num_labels=3))


def _modernbert():  # alternating global and sliding-window (4 tokens) attention, fused Wqkv, gated MLP, bias-free
    return ModernBertForSequenceClassification(ModernBertConfig(
        vocab_size=VOCAB, hidden_size=48, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
        global_attn_every_n_layers=2, local_attention=4, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
        sep_token_id=2, num_labels=3))


def _qwen3():  # grouped queries, head_dim (16) unlike hidden / heads (12), q/k norms
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=16))


def _gemma3():  # local (sliding, 4 tokens) and global layers, query_pre_attn_scalar scaling, four norms a block
    return Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
                                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=4,
                                              sliding_window_pattern=2, query_pre_attn_scalar=16))


BUILDERS = {"bert": _bert, "roberta": _roberta, "t5": _t5, "t5-untied": _t5_untied, "mt5": _mt5, "bart": _bart, "gpt2": _gpt2, "llama": _llama, "xlnet": _xlnet,
            "distilbert": _distilbert, "deberta-v2": _deberta_v2, "modernbert": _modernbert, "qwen3": _qwen3, "gemma3": _gemma3}


def build(family: str, seed: int = 0):
    torch.manual_seed(seed)
    return BUILDERS[family]().eval()


def inputs(family: str, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (2, 9), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding in the second row
    batch = {"input_ids": ids, "attention_mask": mask}
    if family in ("t5", "t5-untied", "mt5", "bart"):
        batch["decoder_input_ids"] = torch.randint(3, VOCAB, (2, 5), generator=generator)
    return batch


def output(model, batch) -> torch.Tensor:
    result = model(**batch)
    return result.logits if hasattr(result, "logits") else result.last_hidden_state


@torch.no_grad()
def perturb(model, std: float = 0.05, seed: int = 0) -> None:
    """Move every trainable parameter off its initial value, as training would."""
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.copy_(torch.randn(p.shape, generator=generator) * std)
