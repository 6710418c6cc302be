"""What a task is: its fields, labels, label words, prompt, official metrics and hub id. No torch.

Label order follows the Hugging Face hub datasets (``nyu-mll/glue``, ``aps/super_glue``), so an
index means the same class whether the data came from local files or from the hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from peftspace.design.errors import PeftspaceError

KINDS = ("classification", "regression", "generation")


class TaskError(PeftspaceError):
    """A task, split, file, column or value that cannot be loaded or scored; the message says how to fix it."""


@dataclass(frozen=True)
class Example:
    """One example.

    Attributes:
        texts: the input text fields, in the order of ``TaskSpec.text_fields``.
        label: class index (classification), float (regression) or target text (generation).
        group: the question/query id that metrics group by (MultiRC, ReCoRD); else None.
        answers: every acceptable target text where there are several (ReCoRD); else empty.
    """

    texts: tuple[str, ...]
    label: int | float | str
    group: str | None = None
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    """A task's description: everything a format or metric needs, nothing that needs a model."""

    name: str
    benchmark: str
    kind: str
    text_fields: tuple[str, ...]
    labels: tuple[str, ...]
    label_words: tuple[str, ...]
    metrics: tuple[str, ...]
    prompt: str
    hub: tuple[str, str | None]


@dataclass
class TaskData:
    """A loaded task: three splits of examples, where they came from, and what to know about them."""

    spec: TaskSpec
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    source: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def format_prompt(spec: TaskSpec, example: Example) -> str:
    """The example's text-to-text input: ``spec.prompt`` with each ``{field}`` filled in (in one pass)."""
    values = dict(zip(spec.text_fields, example.texts))
    return re.sub(r"\{([^{}]+)\}", lambda m: values.get(m.group(1), m.group(0)), spec.prompt)


def references(examples: list[Example]) -> list:
    """What ``compute_metrics`` should get as references: every gold answer where there are several (ReCoRD)."""
    return [list(e.answers) if e.answers else e.label for e in examples]


_YES_NO = ("no", "yes")
_FALSE_TRUE = ("false", "true")
_ENTAIL = ("entailment", "not_entailment")


def _glue(name, fields, labels, words, metrics, prompt, kind="classification") -> TaskSpec:
    return TaskSpec(name, "glue", kind, fields, labels, words, metrics, prompt, ("nyu-mll/glue", name))


def _superglue(name, config, fields, labels, words, metrics, prompt, kind="classification") -> TaskSpec:
    return TaskSpec(name, "superglue", kind, fields, labels, words, metrics, prompt, ("aps/super_glue", config))


_SPECS = (
    _glue("cola", ("sentence",), ("unacceptable", "acceptable"), ("unacceptable", "acceptable"), ("mcc",),
          "cola sentence: {sentence}"),
    _glue("sst2", ("sentence",), ("negative", "positive"), ("negative", "positive"), ("accuracy",),
          "sst2 sentence: {sentence}"),
    _glue("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), _YES_NO, ("f1", "accuracy"),
          "mrpc sentence1: {sentence1} sentence2: {sentence2}"),
    _glue("stsb", ("sentence1", "sentence2"), (), (), ("pearson", "spearman"),
          "stsb sentence1: {sentence1} sentence2: {sentence2}", kind="regression"),
    _glue("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), _YES_NO, ("f1", "accuracy"),
          "qqp question1: {question1} question2: {question2}"),
    _glue("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("yes", "maybe", "no"),
          ("accuracy",), "mnli hypothesis: {hypothesis} premise: {premise}"),
    _glue("qnli", ("question", "sentence"), _ENTAIL, ("yes", "no"), ("accuracy",),
          "qnli question: {question} sentence: {sentence}"),
    _glue("rte", ("sentence1", "sentence2"), _ENTAIL, ("yes", "no"), ("accuracy",),
          "rte sentence1: {sentence1} sentence2: {sentence2}"),
    _glue("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), _YES_NO, ("accuracy",),
          "wnli sentence1: {sentence1} sentence2: {sentence2}"),
    _superglue("boolq", "boolq", ("question", "passage"), _FALSE_TRUE, _YES_NO, ("accuracy",),
               "boolq question: {question} passage: {passage}"),
    _superglue("cb", "cb", ("premise", "hypothesis"), ("entailment", "contradiction", "neutral"), ("yes", "no", "maybe"),
               ("accuracy", "f1_macro"), "cb hypothesis: {hypothesis} premise: {premise}"),
    _superglue("copa", "copa", ("premise", "question", "choice1", "choice2"), ("choice1", "choice2"), ("first", "second"),
               ("accuracy",), "copa premise: {premise} question: {question} choice1: {choice1} choice2: {choice2}"),
    _superglue("multirc", "multirc", ("paragraph", "question", "answer"), _FALSE_TRUE, _YES_NO, ("f1a", "em"),
               "multirc question: {question} answer: {answer} paragraph: {paragraph}"),
    _superglue("record", "record", ("passage", "query", "entities"), (), (), ("f1", "em"),
               "record query: {query} entities: {entities} passage: {passage}", kind="generation"),
    _superglue("superglue_rte", "rte", ("premise", "hypothesis"), _ENTAIL, ("yes", "no"), ("accuracy",),
               "rte premise: {premise} hypothesis: {hypothesis}"),
    _superglue("wic", "wic", ("word", "sentence1", "sentence2"), _FALSE_TRUE, _YES_NO, ("accuracy",),
               "wic word: {word} sentence1: {sentence1} sentence2: {sentence2}"),
    _superglue("wsc", "wsc.fixed", ("text", "span1_text", "span2_text"), _FALSE_TRUE, _YES_NO, ("accuracy",),
               "wsc text: {text} span1: {span1_text} span2: {span2_text}"),
    TaskSpec("xsum", "xsum", "generation", ("document",), (), (), ("rouge1", "rouge2", "rougeL"),
             "summarize: {document}", ("EdinburghNLP/xsum", None)),
    TaskSpec("wmt16_en_ro", "wmt16", "generation", ("en",), (), (), ("bleu",),
             "translate English to Romanian: {en}", ("wmt/wmt16", "ro-en")),
)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _SPECS}

_EXTRA_ALIASES = {
    "supergluerte": "superglue_rte", "sgrte": "superglue_rte", "mnlimatched": "mnli", "stsbenchmark": "stsb",
    "wmt16": "wmt16_en_ro", "wmt16roen": "wmt16_en_ro", "wmtenro": "wmt16_en_ro", "wmtroen": "wmt16_en_ro",
    "enro": "wmt16_en_ro", "wmt16ro": "wmt16_en_ro", "wsc273": "wsc", "wscfixed": "wsc",
}
_PREFIXES = {"glue": "glue", "nyumllglue": "glue", "superglue": "superglue", "apssuperglue": "superglue",
             "xsum": "xsum", "edinburghnlpxsum": "xsum", "wmt": "wmt16", "wmt16": "wmt16", "wmtwmt16": "wmt16"}


def _compact(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def task_spec(name: str) -> TaskSpec:
    """The spec of a task, by canonical name or alias ("SST-2", "glue/sst2", "STS-B", "superglue/rte", ...)."""
    if isinstance(name, TaskSpec):
        return name
    if not isinstance(name, str) or not name.strip():
        raise TaskError(f"task name {name!r} must be a non-empty string; known tasks: {', '.join(TASKS)}")
    prefix, _, rest = name.strip().rpartition("/")
    benchmark = _PREFIXES.get(_compact(prefix)) if prefix else None
    key = _compact(rest)
    if benchmark == "superglue" and _compact(f"superglue{key}") in _EXTRA_ALIASES:
        key = _compact(f"superglue{key}")
    table = {_compact(n): n for n in TASKS} | _EXTRA_ALIASES
    found = table.get(key)
    if found is None and benchmark in ("wmt16", "xsum"):
        found = table.get(benchmark)
    if found is None or (benchmark and TASKS[found].benchmark != benchmark) or (prefix and benchmark is None):
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} "
                        "(aliases such as 'SST-2', 'glue/sst2', 'STS-B', 'superglue/rte' also work)")
    return TASKS[found]
