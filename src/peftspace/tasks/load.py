"""``load_task``: a benchmark task from local files, else from the hub, with seeded splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from peftspace.tasks.hub import hub_unavailable, read_hub
from peftspace.tasks.local import expected_files, read_local
from peftspace.tasks.splits import carve_validation
from peftspace.tasks.spec import TaskData, TaskError, task_spec

LAYOUT = ("glue/<TASK>/{train,dev}.tsv (MNLI: dev_matched.tsv), superglue/<Task>/{train,val}.jsonl, "
          "xsum/test_sample_1000.jsonl, wmt16_en_ro/{newsdev2016,newstest2016}.{en,ro}")


def load_task(name: str, data_dir: str | Path | None = None, *, seed: int = 0, validation_size: int | float = 0.1,
              max_validation: int = 1000) -> TaskData:
    """Load a benchmark task with train, validation and test splits.

    Local files in ``data_dir`` (the layout of ``shared/data``) come first. When ``data_dir`` is None or
    holds none of the task's files, the task is loaded with ``datasets.load_dataset(*spec.hub)``;
    without ``datasets`` or with ``HF_DATASETS_OFFLINE=1`` that is a TaskError saying what to supply.
    A task whose files are only partly there is a TaskError naming the missing file.

    GLUE/SuperGLUE test labels are hidden, so dev/val is the test split and the validation split is
    carved from train: ``validation_size`` (a fraction, or a count) capped at ``max_validation``, chosen
    by ``numpy.random.default_rng(seed)``. The test split never depends on ``seed``. ``TaskData.notes``
    records every such choice, and whether the data is only a sample.

    ``name`` may also be a task file's path or a ``TaskFile`` (``peftspace.tasks.task_file``): its own
    files and splits, whatever ``data_dir``.
    """
    from peftspace.tasks.task_file import TaskFile, is_task_file, read_task_file

    if is_task_file(name):
        name = read_task_file(name)
    if isinstance(name, TaskFile):
        return name.load(seed)
    spec = task_spec(name)
    raw = None
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise TaskError(f"data directory {str(data_dir)!r} does not exist or is not a directory; "
                            f"it should hold {LAYOUT}")
        raw = read_local(spec, data_dir)
    if raw is None:
        why = hub_unavailable()
        if why:
            raise TaskError(_missing_message(spec, data_dir, why))
        raw = read_hub(spec)
    notes = list(raw.notes)
    if raw.validation is None:
        train, validation, note = carve_validation(raw.train, seed, validation_size, max_validation)
    else:
        train, validation, note = raw.train, raw.validation, "validation: the data's own validation split"
        if len(validation) > max_validation:
            keep = np.sort(np.random.default_rng(seed).permutation(len(validation))[:max_validation])
            validation = [validation[i] for i in keep]
            note += f", subsampled to max_validation={max_validation} with numpy default_rng(seed={seed})"
    notes.append(note)
    for split, examples in (("train", train), ("test", raw.test)):
        if not examples:
            raise TaskError(f"{spec.name}: the {split} split from {raw.source} has no examples")
    return TaskData(spec, train, validation, raw.test, raw.source, tuple(notes))


def _missing_message(spec, data_dir: Path | None, why: str) -> str:
    where = f"in {data_dir}" if data_dir is not None else "(no data directory given)"
    base = data_dir if data_dir is not None else Path("DIR")
    files = [str(base / f) for f in expected_files(spec)]
    hub = ", ".join(repr(a) for a in spec.hub if a)
    return (f"{spec.name}: no local files {where} and the hub cannot be used because {why}. Missing: {files}. "
            f"Supply them with --data-dir DIR (load_task(..., data_dir=DIR)) laid out as {LAYOUT}; "
            f"or `pip install datasets` and go online (HF_DATASETS_OFFLINE unset) to load datasets.load_dataset({hub})")
