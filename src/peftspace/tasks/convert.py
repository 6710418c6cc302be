"""Turn records (a TSV row renamed to the task's fields, a JSONL object, a hub row) into Examples.

A *flat* record has one key per text field plus ``label``; that covers every GLUE task, the flat
SuperGLUE tasks (local and hub), and BYO data. MultiRC and ReCoRD nest several examples in one
local record, and ReCoRD keeps every gold answer, so they get their own converters.
"""

from __future__ import annotations

import json

from peftspace.tasks.spec import Example, TaskError, TaskSpec


def label_index(spec: TaskSpec, raw, where: str) -> int:
    """A class index from an int, a bool, a digit string, or a class name (case-insensitive)."""
    names = [n.lower() for n in spec.labels]
    if isinstance(raw, bool) and len(names) == 2:
        return int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(names):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in names:
            return names.index(text.lower())
        if text.isdigit() and int(text) < len(names):
            return int(text)
    raise TaskError(f"{where}: label {raw!r} is not one of the {spec.name} classes {list(spec.labels)} "
                    f"(or an index 0..{len(names) - 1})")


def regression_label(raw, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise TaskError(f"{where}: regression label {raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise TaskError(f"{where}: regression label {raw!r} is not a finite number")
    return value


def convert_label(spec: TaskSpec, raw, where: str):
    if spec.kind == "classification":
        return label_index(spec, raw, where)
    if spec.kind == "regression":
        return regression_label(raw, where)
    if not isinstance(raw, str):
        raise TaskError(f"{where}: target {raw!r} is not text")
    return raw


def flat_example(spec: TaskSpec, record: dict, where: str, label_key: str = "label") -> Example:
    """An Example from a record with one key per text field and a label key."""
    missing = [f for f in (*spec.text_fields, label_key) if f not in record]
    if missing:
        raise TaskError(f"{where}: missing field(s) {missing}; found {sorted(record)}")
    texts = tuple(_text(record[f]) for f in spec.text_fields)
    return Example(texts, convert_label(spec, record[label_key], where))


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, (bool, dict, list)) else str(value)


def wsc_record(record: dict) -> dict:
    """SuperGLUE WSC JSONL nests the spans under ``target``; the hub has them flat."""
    if "target" in record:
        return {**record, **{k: v for k, v in record["target"].items() if k.endswith("_text")}}
    return record


def multirc_local(spec: TaskSpec, record: dict, where: str) -> list[Example]:
    """SuperGLUE MultiRC JSONL: one passage, its questions, their answer options (one example each)."""
    passage = record["passage"]
    out = []
    for question in passage["questions"]:
        group = f"{record.get('idx')}-{question.get('idx')}"
        for answer in question["answers"]:
            label = convert_label(spec, answer.get("label", 0), where)
            out.append(Example((passage["text"], question["question"], answer["text"]), label, group))
    return out


def multirc_hub(spec: TaskSpec, row: dict, where: str) -> Example:
    idx = row["idx"]
    return Example((row["paragraph"], row["question"], row["answer"]),
                   convert_label(spec, row["label"], where), f"{idx['paragraph']}-{idx['question']}")


def record_local(record: dict) -> list[Example]:
    """SuperGLUE ReCoRD JSONL: a passage with entity spans (inclusive ends) and cloze queries."""
    text = record["passage"]["text"]
    entities = _unique(text[e["start"]:e["end"] + 1] for e in record["passage"]["entities"])
    out = []
    for qa in record["qas"]:
        answers = _unique(a["text"] for a in qa.get("answers", []))
        group = f"{record.get('idx')}-{qa.get('idx')}"
        out.append(Example((text, qa["query"], ", ".join(entities)), answers[0] if answers else "", group, tuple(answers)))
    return out


def record_hub(row: dict) -> Example:
    answers = _unique(row["answers"])
    idx = row["idx"]
    return Example((row["passage"], row["query"], ", ".join(_unique(row["entities"]))), answers[0] if answers else "",
                   f"{idx['passage']}-{idx['query']}", tuple(answers))


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))
