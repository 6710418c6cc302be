"""Bring-your-own data: a CSV, TSV or JSONL file with text column(s) and a label column.

Every malformed input is a TaskError that names the file and the row or byte at fault: a missing
or empty file, a missing column (with the columns that were found), a non-numeric regression label,
a file that is not UTF-8, a malformed JSON line, or too few examples.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftspace.tasks.readers import parse_csv, parse_jsonl, read_text
from peftspace.tasks.splits import carve, carve_validation, holdout_count
from peftspace.tasks.spec import Example, TaskData, TaskError, TaskSpec

CUSTOM_KINDS = ("classification", "regression")
CUSTOM_METRICS = {"classification": ("accuracy", "f1_macro", "f1", "mcc"), "regression": ("pearson", "spearman")}
DEFAULT_METRICS = {"classification": ("accuracy", "f1_macro"), "regression": ("pearson", "spearman")}
TEST_SEED = 0  # the carved test split is the same for every training seed


def load_custom(path: str | Path, *, text_columns: list[str], label_column: str, kind: str = "classification",
                seed: int = 0, test_path: str | Path | None = None, validation_size: int | float = 0.1,
                validation_path: str | Path | None = None, name: str | None = None,
                metrics: tuple[str, ...] | None = None) -> TaskData:
    """Load your own task from a ``.csv``, ``.tsv`` or ``.jsonl`` file.

    Classification: the distinct label values, sorted (numerically when all are numbers, else as text),
    become the classes; their names are ``spec.labels`` and ``spec.label_words``, and each label is
    stored as its class index. Regression: labels must be numbers.

    Splits: with ``test_path`` that file is the test split; otherwise a test split of
    ``validation_size`` is carved first with a fixed seed (the same for every ``seed``). The validation
    split (``validation_size``, a fraction or a count) is then carved from the rest with ``seed``;
    with ``validation_path`` that file is the validation split instead.

    ``name`` names the task (default the file's stem); ``metrics`` replaces the default metrics
    (classification: accuracy and macro F1; regression: Pearson and Spearman) by some of ``CUSTOM_METRICS``.
    Classification labels must be all numbers or all text (a mix is a TaskError naming a row of each).
    """
    if kind not in CUSTOM_KINDS:
        raise TaskError(f"kind={kind!r} is not supported for your own data; use one of {list(CUSTOM_KINDS)}")
    if isinstance(text_columns, str) or not text_columns or not all(isinstance(c, str) for c in text_columns):
        raise TaskError(f"text_columns={text_columns!r} must be a non-empty list of column names")
    path = Path(path)
    columns = [*text_columns, label_column]
    rows = _records(path, columns)
    if len(rows) < 2:
        raise TaskError(f"{path} has {len(rows)} example(s); at least 2 are needed (one to train on, one to evaluate)")
    metrics = checked_metrics(kind, metrics)
    test_rows = _records(Path(test_path), columns) if test_path is not None else None
    if test_rows is not None and not test_rows:
        raise TaskError(f"{test_path} has no examples")
    validation_rows = _records(Path(validation_path), columns) if validation_path is not None else None
    if validation_rows is not None and not validation_rows:
        raise TaskError(f"{validation_path} has no examples")

    labels: tuple[str, ...] = ()
    if kind == "classification":
        labels = _class_names(rows + (test_rows or []) + (validation_rows or []), label_column)
        if len(labels) < 2:
            raise TaskError(f"{path}: column {label_column!r} has only one distinct value {labels!r}; "
                            "classification needs at least 2 classes (or use kind='regression')")
        if "f1" in metrics and len(labels) != 2:
            raise TaskError(f"metric 'f1' is the F1 of the positive class of a binary task, but {path} has {len(labels)} "
                            f"classes {list(labels)}; use 'f1_macro'")
    spec = TaskSpec(name=name or path.stem, benchmark="custom", kind=kind, text_fields=tuple(text_columns), labels=labels,
                    label_words=labels, metrics=metrics,
                    prompt=" ".join(f"{c}: {{{c}}}" for c in text_columns), hub=(str(path), None))
    examples = [_example(spec, record, label_column, where) for record, where in rows]
    notes = [f"your own data from {path} ({kind}, text columns {list(text_columns)}, label column {label_column!r})"]
    if test_rows is not None:
        test = [_example(spec, record, label_column, where) for record, where in test_rows]
        pool = examples
        notes.append(f"test: {test_path}")
    else:
        count = holdout_count(validation_size, len(examples), what="validation_size (also the test fraction)")
        if count == 0:
            raise TaskError("no test split: give test_path, or a validation_size above 0 so that a test split can be carved")
        pool, test = carve(examples, count, TEST_SEED)
        notes.append(f"test: {len(test)} examples carved from {path} with a fixed seed ({TEST_SEED}), the same for every seed")
    if validation_rows is not None:
        train, validation = pool, [_example(spec, record, label_column, where) for record, where in validation_rows]
        notes.append(f"validation: {validation_path}")
    else:
        train, validation, note = carve_validation(pool, seed, validation_size, None)
        notes.append(note)
    return TaskData(spec, train, validation, test, str(path), tuple(notes))


def _records(path: Path, columns: list[str]) -> list[tuple[dict, str]]:
    """(record, where) pairs, checked for the needed columns."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".json"):
        raise TaskError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl (one JSON object per line)")
    text = read_text(path)
    if not text.strip():
        raise TaskError(f"{path} is empty; it needs a header row (CSV) or JSON lines, and at least 2 examples")
    if suffix in (".jsonl", ".json"):
        records = parse_jsonl(text, path)
        found = list(dict.fromkeys(k for r in records for k in r))
        missing = [c for c in columns if c not in found]
        if missing:
            raise TaskError(f"{path}: missing column(s) {missing}; columns found: {found}")
        for number, record in enumerate(records, start=1):
            absent = [c for c in columns if c not in record]
            if absent:
                raise TaskError(f"{path} line {number}: no {absent} key(s); keys found: {sorted(record)}")
        return [(r, f"{path} line {n}") for n, r in enumerate(records, start=1)]
    found, rows = parse_csv(text, "\t" if suffix == ".tsv" else ",")
    missing = [c for c in columns if c not in found]
    if missing:
        raise TaskError(f"{path}: missing column(s) {missing}; columns found: {found}")
    out = []
    for number, row in enumerate(rows, start=1):
        where = f"{path} row {number} (line {number + 1})"
        if any(row.get(c) is None for c in columns):
            raise TaskError(f"{where} has fewer fields than the header {found}")
        out.append((row, where))
    return out


def _label_text(value) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def checked_metrics(kind: str, metrics) -> tuple[str, ...]:
    """``metrics`` for a ``kind`` task (None: the defaults), or a TaskError naming what is not one of ``CUSTOM_METRICS``."""
    if metrics is None:
        return DEFAULT_METRICS[kind]
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)) or not metrics \
            or not all(isinstance(m, str) for m in metrics):
        raise TaskError(f"metrics={metrics!r} must be a non-empty list drawn from {list(CUSTOM_METRICS[kind])} ({kind})")
    unknown = [m for m in metrics if m not in CUSTOM_METRICS[kind]]
    if unknown or len(set(metrics)) != len(metrics):
        raise TaskError(f"metrics {list(metrics)}: {f'unknown {unknown}' if unknown else 'a metric repeats'}; "
                        f"a {kind} task takes metrics from {list(CUSTOM_METRICS[kind])}")
    return tuple(metrics)


def _label_type(value) -> str:
    """``number`` or ``text``: what a classification label is (a JSON number or a numeric CSV cell is a number)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "number" if _as_number(value.strip()) is not None else "text"
    return "other"


def _class_names(rows: list[tuple[dict, str]], label_column: str) -> tuple[str, ...]:
    """The classes, sorted; TaskError for labels that are lists or objects, or a mix of numbers, text and booleans."""
    first: dict[str, tuple] = {}
    for record, where in rows:
        value = record[label_column]
        if not _label_text(value):
            raise TaskError(f"{where}: the label in column {label_column!r} is empty")
        kind = _label_type(value)
        if kind == "other":
            raise TaskError(f"{where}: the label {value!r} in column {label_column!r} is a JSON "
                            f"{type(value).__name__}; a class label must be a string, a number or a boolean")
        first.setdefault(kind, (value, where))
    if len(first) > 1:
        seen = "; ".join(f"{kind} {value!r} ({where})" for kind, (value, where) in first.items())
        raise TaskError(f"column {label_column!r} mixes label types: {seen}; give every label as the same type "
                        f"(all class names, or all numbers)")
    names = sorted({_label_text(r[label_column]) for r, _ in rows})
    if all(_as_number(n) is not None for n in names):
        names.sort(key=float)
    return tuple(names)


def _example(spec: TaskSpec, record: dict, label_column: str, where: str) -> Example:
    texts = tuple("" if record[c] is None else record[c] if isinstance(record[c], str) else json.dumps(record[c])
                  for c in spec.text_fields)
    raw = record[label_column]
    if spec.kind == "classification":
        name = _label_text(raw)
        if not name:
            raise TaskError(f"{where}: the label in column {label_column!r} is empty")
        return Example(texts, spec.labels.index(name))
    value = _as_number(_label_text(raw)) if not isinstance(raw, bool) else None
    if value is None or value != value or abs(value) == float("inf"):
        raise TaskError(f"{where}: label {raw!r} in column {label_column!r} is not a number; "
                        "regression needs numeric labels (or use kind='classification')")
    return Example(texts, value)
