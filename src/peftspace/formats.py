"""How a task meets a model: a classification/regression head, text-to-text, or label-word scoring.

- ``head``: encoders (and decoders on request) get ``AutoModelForSequenceClassification``; the head
  trains but is reported apart from the design's budget.
- ``text-to-text``: T5/BART read a prompt and write the label word (classification), the score with
  one decimal (regression), or the target text (generation). Classes are predicted by ranking the
  label words' log-likelihoods, which cannot produce an invalid label.
- ``label-scoring``: decoders read the prompt and are trained to continue with the label word;
  classes are predicted by ranking the label words' log-likelihoods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from peftspace.design.errors import ModelError

IGNORE = -100


@dataclass
class Batch:
    inputs: dict[str, torch.Tensor]
    references: list
    groups: list = field(default_factory=list)
    contexts: list = field(default_factory=list)  # label-scoring: each example's prompt tokens

    def to(self, device) -> Batch:
        """This batch with its tensors on ``device`` (itself when they are there already, as on the CPU)."""
        if all(v.device == torch.device(device) for v in self.inputs.values()):
            return self
        return Batch({k: v.to(device, non_blocking=True) for k, v in self.inputs.items()}, self.references, self.groups,
                     self.contexts)


def default_format(family: str) -> str:
    """The format for a family name, by the kind its family map declares (``peftspace.families.Family.kind``)."""
    from peftspace.families import family_map

    return {"seq2seq": "text-to-text", "decoder": "label-scoring"}.get(family_map(family).kind, "head")


def make_format(name: str, spec, tokenizer, max_length: int, max_target_length: int = 64):
    formats = {"head": HeadFormat, "text-to-text": TextToTextFormat, "label-scoring": LabelScoringFormat}
    if name not in formats:
        raise ModelError(f"unknown format {name!r}; use one of {sorted(formats)}")
    return formats[name](spec, tokenizer, max_length, max_target_length)


class _Format:
    def __init__(self, spec, tokenizer, max_length: int, max_target_length: int):
        self.spec, self.tokenizer = spec, tokenizer
        self.max_length, self.max_target_length = max_length, max_target_length

    def prompt(self, example) -> str:
        from peftspace.tasks import format_prompt

        return format_prompt(self.spec, example)

    def target(self, example) -> str:
        if self.spec.kind == "classification":
            return self.spec.label_words[example.label]
        if self.spec.kind == "regression":
            return f"{float(example.label):.1f}"
        return str(example.label)

    def _pad(self, rows: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(r) for r in rows)
        return torch.tensor([r + [value] * (width - len(r)) for r in rows])

    def head_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        return []

    def length(self, encoded: dict) -> int:
        """The tokens ``encoded`` brings to a padded batch: the sort key of length bucketing."""
        return len(encoded["input_ids"])


class HeadFormat(_Format):
    """Sequence classification or regression with a task head on the backbone's pooled output."""

    def model_kwargs(self) -> dict:
        if self.spec.kind == "generation":
            raise ModelError(f"{self.spec.name} is a generation task: use a T5/BART model (format text-to-text)")
        if self.spec.kind == "regression":
            return {"num_labels": 1, "problem_type": "regression"}
        return {"num_labels": len(self.spec.labels), "problem_type": "single_label_classification"}

    def model_class(self):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification

    def encode(self, example) -> dict:
        first, *rest = example.texts
        second = " ".join(rest) if rest else None
        return dict(self.tokenizer(first, second, truncation=True, max_length=self.max_length))

    def collate(self, encoded: list[dict], examples: list) -> Batch:
        inputs = self.tokenizer.pad(encoded, return_tensors="pt")
        dtype = torch.float32 if self.spec.kind == "regression" else torch.long
        inputs["labels"] = torch.tensor([e.label for e in examples], dtype=dtype)
        return Batch(dict(inputs), [e.label for e in examples], [e.group for e in examples])

    def loss(self, model, batch: Batch) -> torch.Tensor:
        return model(**batch.inputs).loss

    @torch.no_grad()
    def predict(self, model, batch: Batch) -> list:
        inputs = {k: v for k, v in batch.inputs.items() if k != "labels"}
        logits = model(**inputs).logits
        if self.spec.kind == "regression":
            return logits.squeeze(-1).float().tolist()
        return logits.argmax(-1).tolist()

    def head_parameters(self, model: nn.Module) -> list[nn.Parameter]:
        backbone = {id(p) for p in getattr(model, "base_model", model).parameters()}
        return [p for p in model.parameters() if id(p) not in backbone]


class TextToTextFormat(_Format):
    """Encoder-decoders: prompt in, label word / score / target text out."""

    def model_kwargs(self) -> dict:
        return {}

    def model_class(self):
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM

    def encode(self, example) -> dict:
        source = self.tokenizer(self.prompt(example), truncation=True, max_length=self.max_length)
        target = self.tokenizer(text_target=self.target(example), truncation=True, max_length=self.max_target_length)
        return {"input_ids": source["input_ids"], "attention_mask": source["attention_mask"], "labels": target["input_ids"]}

    def length(self, encoded: dict) -> int:
        return len(encoded["input_ids"]) + len(encoded["labels"])  # source and target pad apart

    def collate(self, encoded: list[dict], examples: list) -> Batch:
        pad = self.tokenizer.pad_token_id
        inputs = {"input_ids": self._pad([e["input_ids"] for e in encoded], pad),
                  "attention_mask": self._pad([e["attention_mask"] for e in encoded], 0),
                  "labels": self._pad([e["labels"] for e in encoded], IGNORE)}
        return Batch(inputs, [e.label for e in examples], [e.group for e in examples])

    def loss(self, model, batch: Batch) -> torch.Tensor:
        return model(**batch.inputs).loss

    @torch.no_grad()
    def predict(self, model, batch: Batch) -> list:
        source = {k: batch.inputs[k] for k in ("input_ids", "attention_mask")}
        if self.spec.kind == "classification":
            return _rank_label_words(self, model, source).tolist()
        generated = model.generate(**source, max_new_tokens=self.max_target_length, num_beams=1, do_sample=False)
        texts = [t.strip() for t in self.tokenizer.batch_decode(generated, skip_special_tokens=True)]
        return [_parse_number(t) for t in texts] if self.spec.kind == "regression" else texts


class LabelScoringFormat(_Format):
    """Decoders: the prompt, then the label word; only the label word's tokens carry loss."""

    def model_kwargs(self) -> dict:
        if self.spec.kind != "classification":
            raise ModelError(f"label-scoring needs a classification task; {self.spec.name} is {self.spec.kind} "
                             "(use --format head for regression with a decoder, or a T5/BART model for generation)")
        return {}

    def model_class(self):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def _context(self, example) -> list[int]:
        ids = self.tokenizer(self.prompt(example) + "\nAnswer:", truncation=True, max_length=self.max_length)["input_ids"]
        return ids

    def _word(self, word: str) -> list[int]:
        return self.tokenizer(" " + word, add_special_tokens=False)["input_ids"]

    def encode(self, example) -> dict:
        context, answer = self._context(example), self._word(self.target(example))
        return {"input_ids": context + answer, "labels": [IGNORE] * len(context) + answer, "context": context}

    def collate(self, encoded: list[dict], examples: list) -> Batch:
        pad = self.tokenizer.pad_token_id
        ids = [e["input_ids"] for e in encoded]
        inputs = {"input_ids": self._pad(ids, pad), "attention_mask": self._pad([[1] * len(i) for i in ids], 0),
                  "labels": self._pad([e["labels"] for e in encoded], IGNORE)}
        return Batch(inputs, [e.label for e in examples], [e.group for e in examples], [e["context"] for e in encoded])

    def loss(self, model, batch: Batch) -> torch.Tensor:
        return model(**batch.inputs).loss

    @torch.no_grad()
    def predict(self, model, batch: Batch) -> list:
        words = [self._word(w) for w in self.spec.label_words]
        rows, labels = [], []
        for context in batch.contexts:
            for word in words:
                rows.append(context + word)
                labels.append([IGNORE] * len(context) + word)
        device = next(model.parameters()).device
        ids = self._pad(rows, self.tokenizer.pad_token_id).to(device)
        mask = self._pad([[1] * len(r) for r in rows], 0).to(device)
        scores = _sequence_log_likelihood(model(input_ids=ids, attention_mask=mask).logits[:, :-1],
                                          self._pad(labels, IGNORE)[:, 1:].to(device))
        return scores.view(len(batch.contexts), len(words)).argmax(-1).tolist()


def _rank_label_words(fmt: TextToTextFormat, model, source: dict) -> torch.Tensor:
    words = [fmt.tokenizer(text_target=w)["input_ids"] for w in fmt.spec.label_words]
    n, c = source["input_ids"].shape[0], len(words)
    repeated = {k: v.repeat_interleave(c, dim=0) for k, v in source.items()}
    labels = fmt._pad(words * n, IGNORE).to(source["input_ids"].device)
    logits = model(**repeated, labels=labels).logits
    return _sequence_log_likelihood(logits, labels).view(n, c).argmax(-1)


def _sequence_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    log_probs = logits.float().log_softmax(-1)
    keep = labels != IGNORE
    picked = log_probs.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(-1)


def _parse_number(text: str) -> float:
    match = re.search(r"-?\d+(\.\d+)?", text)
    return float(match.group()) if match else 0.0
