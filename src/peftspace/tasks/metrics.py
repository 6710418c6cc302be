"""Official metrics per task, computed with maintained libraries, and the GLUE-average convention.

Convention: every score is on a 0-100 scale. Accuracy, F1 (binary, macro, MultiRC F1a, ReCoRD token
F1), exact match and ROUGE F-measures are fractions times 100; MCC, Pearson and Spearman are
coefficients times 100 (so they lie in [-100, 100]); BLEU is sacrebleu's corpus BLEU, already 0-100.

Libraries: scikit-learn (accuracy, F1, MCC), scipy.stats (Pearson, Spearman), rouge_score
(RougeScorer with the Porter stemmer), sacrebleu (corpus_bleu, default 13a tokenization). ReCoRD
uses SQuAD normalization (lowercase, strip punctuation and articles) with the max over gold answers.
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections import Counter

import numpy as np

from peftspace.tasks.spec import TaskError, TaskSpec, task_spec

INVALID = -1  # a predicted class that is no class at all (e.g. generated text that is not a label word)


def compute_metrics(spec: TaskSpec | str, predictions: list, references: list, groups: list | None = None) -> dict[str, float]:
    """The task's official metrics (``spec.metrics``), each on a 0-100 scale (see the module docstring).

    Args:
        spec: the task (or its name).
        predictions: class indices, label names or label words (classification; anything else counts
            as wrong); numbers or numeric strings (regression; a non-numeric prediction scores as 0.0);
            texts (generation).
        references: the gold labels, same kinds; for ReCoRD each may be a list of acceptable answers.
        groups: the question id of every example; required for MultiRC's exact match.
    """
    spec = task_spec(spec)
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise TaskError(f"{len(predictions)} predictions but {len(references)} references; they must pair up")
    if not predictions:
        raise TaskError("no predictions to score")
    if groups is not None and len(groups) != len(predictions):
        raise TaskError(f"{len(groups)} groups for {len(predictions)} predictions; give one group per example")
    if spec.name == "record":
        return _record(predictions, references)
    if spec.kind == "generation":
        return _generation(spec, [str(p) for p in predictions], [str(r) for r in references])
    if spec.kind == "regression":
        return _regression(spec, [_number(p) for p in predictions], [_number(r, strict=True) for r in references])
    preds = [_class(spec, p) for p in predictions]
    refs = [_class(spec, r) for r in references]
    if INVALID in refs:
        bad = references[refs.index(INVALID)]
        raise TaskError(f"a reference is not a {spec.name} class: {bad!r}; classes are {list(spec.labels)}")
    return {m: _classification(m, preds, refs, groups) for m in spec.metrics}


def main_score(spec: TaskSpec | str, metrics: dict) -> float:
    """The mean of the task's official metrics: e.g. MRPC/QQP mean of F1 and accuracy, STS-B of Pearson and Spearman."""
    spec = task_spec(spec)
    missing = [m for m in spec.metrics if m not in metrics]
    if missing:
        raise TaskError(f"{spec.name}: metrics {sorted(metrics)} lack the official {missing}; "
                        f"the main score is the mean of {list(spec.metrics)}")
    return float(np.mean([float(metrics[m]) for m in spec.metrics]))


def glue_average(scores_by_task: dict[str, dict]) -> float:
    """The GLUE-style average: the unweighted mean, over the tasks given, of each task's ``main_score``.

    This follows the GLUE paper (Wang et al., 2019): a task with several metrics contributes the
    unweighted mean of them (MRPC and QQP: F1 and accuracy; STS-B: Pearson and Spearman), CoLA its
    MCC, every other task its accuracy, all on the 0-100 scale. Our choices, which differ from the
    leaderboard: MNLI is scored on matched dev only, the average covers exactly the tasks passed in
    (say which ones when you report it; papers often leave out WNLI), and scores come from dev used as
    test. It works the same for SuperGLUE tasks (MultiRC: mean of F1a and EM; ReCoRD: of F1 and EM).

    Args:
        scores_by_task: task name (aliases accepted) -> that task's metrics dict.
    """
    if not scores_by_task:
        raise TaskError("glue_average needs the metrics of at least one task")
    return float(np.mean([main_score(name, metrics) for name, metrics in scores_by_task.items()]))


def _class(spec: TaskSpec, value) -> int:
    if isinstance(value, (bool, np.bool_)):
        return int(value) if len(spec.labels) == 2 else INVALID
    if isinstance(value, (int, np.integer)):
        return int(value) if 0 <= value < len(spec.labels) else INVALID
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return _class(spec, int(value))
    if isinstance(value, str):
        text = value.strip().lower()
        for names in (spec.labels, spec.label_words):
            lowered = [n.lower() for n in names]
            if text in lowered:
                return lowered.index(text)
    return INVALID


def _number(value, strict: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if math.isfinite(number):
        return number
    if strict:
        raise TaskError(f"regression reference {value!r} is not a finite number")
    return 0.0


def _classification(metric: str, preds: list[int], refs: list[int], groups) -> float:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    if metric == "accuracy":
        return 100.0 * accuracy_score(refs, preds)
    if metric in ("f1", "f1a"):  # F1 of the positive class (index 1); MultiRC: over all answer options
        return 100.0 * f1_score(refs, preds, labels=[1], average="macro", zero_division=0)
    if metric == "f1_macro":  # over the classes that occur in the references or the predictions
        classes = sorted(set(refs) | (set(preds) - {INVALID}))
        return 100.0 * f1_score(refs, preds, labels=classes, average="macro", zero_division=0)
    if metric == "mcc":
        return 100.0 * matthews_corrcoef(refs, preds)
    if metric == "em":  # MultiRC: the fraction of questions with every answer option right
        if groups is None:
            raise TaskError("exact match over questions needs groups (the question id of every example)")
        right: dict = {}
        for g, p, r in zip(groups, preds, refs):
            right[g] = right.get(g, True) and p == r
        return 100.0 * float(np.mean(list(right.values())))
    raise TaskError(f"unknown classification metric {metric!r}")


def _regression(spec: TaskSpec, preds: list[float], refs: list[float]) -> dict[str, float]:
    """Pearson/Spearman x 100; a constant input has no correlation and scores 0 (as MCC does)."""
    from scipy.stats import pearsonr, spearmanr

    out = {}
    for metric in spec.metrics:
        if len(preds) < 2 or np.ptp(preds) == 0 or np.ptp(refs) == 0:
            out[metric] = 0.0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = (pearsonr if metric == "pearson" else spearmanr)(preds, refs)[0]
        out[metric] = 100.0 * float(r) if math.isfinite(r) else 0.0
    return out


def _generation(spec: TaskSpec, preds: list[str], refs: list[str]) -> dict[str, float]:
    out = {}
    rouge = [m for m in spec.metrics if m.startswith("rouge")]
    if rouge:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer(rouge, use_stemmer=True)
        scores = [scorer.score(r, p) for p, r in zip(preds, refs)]
        out.update({m: 100.0 * float(np.mean([s[m].fmeasure for s in scores])) for m in rouge})
    if "bleu" in spec.metrics:
        import sacrebleu

        out["bleu"] = float(sacrebleu.corpus_bleu(preds, [refs]).score)
    return out


def _normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _token_f1(prediction: str, gold: str) -> float:
    pred, ref = _normalize(prediction).split(), _normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return float(pred == ref)  # both empty counts as a match
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _record(predictions: list, references: list) -> dict[str, float]:
    """ReCoRD: per query, the max over its gold answers of token F1 and of exact match (SQuAD normalization)."""
    f1, em = [], []
    for prediction, gold in zip(predictions, references):
        golds = [gold] if isinstance(gold, str) else list(gold)
        if not golds:
            raise TaskError("a ReCoRD reference has no gold answer")
        f1.append(max(_token_f1(str(prediction), g) for g in golds))
        em.append(max(float(_normalize(str(prediction)) == _normalize(g)) for g in golds))
    return {"f1": 100.0 * float(np.mean(f1)), "em": 100.0 * float(np.mean(em))}
