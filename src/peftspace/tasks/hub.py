"""Loading from the Hugging Face hub through ``datasets`` (imported only when used).

Hub rows use the task's own field names (``TaskSpec.text_fields``) and integer labels in the same
order as ``TaskSpec.labels``; MultiRC, ReCoRD, XSum and WMT16 need their own conversion.
"""

from __future__ import annotations

import importlib.util
import os

from peftspace.tasks import convert
from peftspace.tasks.local import Raw
from peftspace.tasks.spec import Example, TaskSpec

# which hub split is the test split: GLUE/SuperGLUE test labels are hidden (-1), so the labelled
# validation split is used instead; XSum and WMT16 have labelled test splits of their own.
_TEST_SPLIT = {"mnli": "validation_matched"}


def hub_unavailable() -> str | None:
    """Why the hub cannot be used here, or None when it can."""
    if os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return "HF_DATASETS_OFFLINE=1 is set"
    if importlib.util.find_spec("datasets") is None:
        return "the `datasets` package is not installed"
    return None


def read_hub(spec: TaskSpec) -> Raw:
    import datasets  # optional dependency, only for loading from the hub

    path, config = spec.hub
    dataset = datasets.load_dataset(path, config) if config else datasets.load_dataset(path)
    source = f"hub:{path}" + (f"/{config}" if config else "")
    if spec.benchmark in ("glue", "superglue"):
        test_split = _TEST_SPLIT.get(spec.name, "validation")
        notes = [f"{spec.benchmark.upper()} test labels are hidden: the hub's {test_split!r} split serves as the test split"]
        return Raw(_convert(spec, dataset["train"]), _convert(spec, dataset[test_split]), source, notes)
    notes = [f"{spec.name}: the hub's own train/validation/test splits"]
    return Raw(_convert(spec, dataset["train"]), _convert(spec, dataset["test"]), source, notes,
               _convert(spec, dataset["validation"]))


def _convert(spec: TaskSpec, rows) -> list[Example]:
    out = []
    for number, row in enumerate(rows):
        where = f"hub {spec.hub[0]} row {number}"
        if spec.name == "multirc":
            out.append(convert.multirc_hub(spec, row, where))
        elif spec.name == "record":
            out.append(convert.record_hub(row))
        elif spec.name == "xsum":
            out.append(convert.flat_example(spec, row, where, label_key="summary"))
        elif spec.name == "wmt16_en_ro":
            out.append(Example((row["translation"]["en"],), row["translation"]["ro"]))
        else:
            out.append(convert.flat_example(spec, row, where))
    return out
