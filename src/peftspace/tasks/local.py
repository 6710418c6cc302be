"""Local files in their original formats, in the layout of ``shared/data`` (see its README).

    glue/<TASK>/{train,dev}.tsv              (MNLI: dev_matched.tsv; MNLI/QQP may be only sample_k16_seed42/)
    superglue/<Task>/{train,val}.jsonl
    xsum/test_sample_1000.jsonl              (or xsum/{train,validation,test}.jsonl)
    wmt16_en_ro/newsdev2016.{en,ro}, newstest2016.{en,ro}   (optionally train.{en,ro})

``read_local`` returns None when none of a task's files is there (the caller may go to the hub) and
raises TaskError naming the file when only some are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from peftspace.tasks import convert
from peftspace.tasks.readers import read_jsonl, read_lines, read_tsv
from peftspace.tasks.spec import Example, TaskError, TaskSpec

SAMPLE_DIR = "sample_k16_seed42"


@dataclass(frozen=True)
class _Glue:
    folder: str
    columns: dict          # text field -> TSV column name (CoLA, headerless: column number as a string)
    label: str
    test_file: str = "dev.tsv"
    header: bool = True


_GLUE = {
    "cola": _Glue("CoLA", {"sentence": "3"}, "1", header=False),
    "sst2": _Glue("SST-2", {"sentence": "sentence"}, "label"),
    "mrpc": _Glue("MRPC", {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality"),
    "stsb": _Glue("STS-B", {"sentence1": "sentence1", "sentence2": "sentence2"}, "score"),
    "qqp": _Glue("QQP", {"question1": "question1", "question2": "question2"}, "is_duplicate"),
    "mnli": _Glue("MNLI", {"premise": "sentence1", "hypothesis": "sentence2"}, "gold_label", test_file="dev_matched.tsv"),
    "qnli": _Glue("QNLI", {"question": "question", "sentence": "sentence"}, "label"),
    "rte": _Glue("RTE", {"sentence1": "sentence1", "sentence2": "sentence2"}, "label"),
    "wnli": _Glue("WNLI", {"sentence1": "sentence1", "sentence2": "sentence2"}, "label"),
}
_SUPERGLUE = {"boolq": "BoolQ", "cb": "CB", "copa": "COPA", "multirc": "MultiRC", "record": "ReCoRD",
              "superglue_rte": "RTE", "wic": "WiC", "wsc": "WSC"}
XSUM_SAMPLE = "xsum/test_sample_1000.jsonl"
WMT_DIR = "wmt16_en_ro"


@dataclass
class Raw:
    """What the local files hold before validation is carved: a training pool and a test split."""

    train: list[Example]
    test: list[Example]
    source: str
    notes: list[str]
    validation: list[Example] | None = None   # only when the files have their own validation split


def expected_files(spec: TaskSpec) -> list[str]:
    """The task's files, relative to the data directory (the full layout, not the sample fallback)."""
    if spec.name in _GLUE:
        g = _GLUE[spec.name]
        return [f"glue/{g.folder}/train.tsv", f"glue/{g.folder}/{g.test_file}"]
    if spec.name in _SUPERGLUE:
        return [f"superglue/{_SUPERGLUE[spec.name]}/train.jsonl", f"superglue/{_SUPERGLUE[spec.name]}/val.jsonl"]
    if spec.name == "xsum":
        return [XSUM_SAMPLE]
    if spec.name == "wmt16_en_ro":
        return [f"{WMT_DIR}/newsdev2016.{s}" for s in ("en", "ro")] + [f"{WMT_DIR}/newstest2016.{s}" for s in ("en", "ro")]
    raise TaskError(f"task {spec.name!r} has no local layout")


def read_local(spec: TaskSpec, data_dir: Path) -> Raw | None:
    if spec.name in _GLUE:
        return _read_glue(spec, data_dir)
    if spec.name in _SUPERGLUE:
        return _read_superglue(spec, data_dir)
    if spec.name == "xsum":
        return _read_xsum(spec, data_dir)
    return _read_wmt(spec, data_dir)


def _require(data_dir: Path, relative: list[str], spec: TaskSpec) -> list[Path] | None:
    """The paths if all exist; None if none does; TaskError naming the missing ones otherwise."""
    paths = [data_dir / r for r in relative]
    missing = [str(p) for p in paths if not p.is_file()]
    if len(missing) == len(paths):
        return None
    if missing:
        raise TaskError(f"{spec.name}: missing file(s) {missing} in the local data directory {data_dir} "
                        f"(the task needs {relative}); add them, or load the task from the Hugging Face hub "
                        f"by giving no data directory (needs `pip install datasets` and internet)")
    return paths


def _read_glue(spec: TaskSpec, data_dir: Path) -> Raw | None:
    g = _GLUE[spec.name]
    notes = ["GLUE test labels are hidden: the dev split serves as the test split"]
    paths = _require(data_dir, expected_files(spec), spec)
    if paths is None and spec.name in ("mnli", "qqp"):
        sample = f"glue/{g.folder}/{SAMPLE_DIR}"
        paths = _require(data_dir, [f"{sample}/train.tsv", f"{sample}/{g.test_file}"], spec)
        if paths is not None:
            notes.append(f"SAMPLE ONLY: glue/{g.folder}/{SAMPLE_DIR} is a 16-per-class few-shot sample, not the full "
                         "split, and its dev file is drawn from GLUE train, not the official dev set; scores on it are "
                         "not comparable with published GLUE numbers")
    if paths is None:
        return None
    train, test = (_glue_examples(spec, g, p) for p in paths)
    return Raw(train, test, str(paths[0].parent), notes)


def _glue_examples(spec: TaskSpec, g: _Glue, path: Path) -> list[Example]:
    columns, rows = read_tsv(path, header=g.header)
    wanted = [*g.columns.values(), g.label]
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise TaskError(f"{path}: missing column(s) {missing}; found {columns}")
    index = {name: columns.index(name) for name in wanted}
    out = []
    for number, row in enumerate(rows, start=2 if g.header else 1):
        record = {field: row[index[col]] for field, col in g.columns.items()} | {"label": row[index[g.label]]}
        out.append(convert.flat_example(spec, record, f"{path} line {number}"))
    return out


def _read_superglue(spec: TaskSpec, data_dir: Path) -> Raw | None:
    paths = _require(data_dir, expected_files(spec), spec)
    if paths is None:
        return None
    train, test = (_superglue_examples(spec, p) for p in paths)
    notes = ["SuperGLUE test labels are hidden: val.jsonl serves as the test split"]
    return Raw(train, test, str(paths[0].parent), notes)


def _superglue_examples(spec: TaskSpec, path: Path) -> list[Example]:
    out = []
    for number, record in enumerate(read_jsonl(path), start=1):
        where = f"{path} record {number}"
        try:
            if spec.name == "multirc":
                out.extend(convert.multirc_local(spec, record, where))
            elif spec.name == "record":
                out.extend(convert.record_local(record))
            else:
                out.append(convert.flat_example(spec, convert.wsc_record(record) if spec.name == "wsc" else record, where))
        except (KeyError, TypeError) as err:
            raise TaskError(f"{where}: not in the SuperGLUE {spec.name} format (missing or malformed {err})") from None
    return out


def _read_xsum(spec: TaskSpec, data_dir: Path) -> Raw | None:
    full = _require(data_dir, [f"xsum/{s}.jsonl" for s in ("train", "validation", "test")], spec)
    if full is not None:
        train, validation, test = (_xsum_examples(spec, p) for p in full)
        return Raw(train, test, str(data_dir / "xsum"), ["XSum: local train/validation/test files"], validation)
    paths = _require(data_dir, [XSUM_SAMPLE], spec)
    if paths is None:
        return None
    pairs = _xsum_examples(spec, paths[0])
    n_test = max(1, len(pairs) // 10)
    notes = [f"SAMPLE ONLY: {XSUM_SAMPLE} holds {len(pairs)} pairs of the official XSum test split; its last {n_test} "
             "lines (file order, which is already random) are the test split and the rest is the training pool, the "
             "same for every seed; the full XSum train/validation/test is on the hub (EdinburghNLP/xsum)"]
    return Raw(pairs[:-n_test], pairs[-n_test:], str(paths[0]), notes)


def _xsum_examples(spec: TaskSpec, path: Path) -> list[Example]:
    return [convert.flat_example(spec, r, f"{path} record {n}", label_key="summary") for n, r in enumerate(read_jsonl(path), 1)]


def _read_wmt(spec: TaskSpec, data_dir: Path) -> Raw | None:
    paths = _require(data_dir, expected_files(spec), spec)
    if paths is None:
        return None
    dev, test = _aligned(paths[0], paths[1]), _aligned(paths[2], paths[3])
    train_paths = [data_dir / WMT_DIR / f"train.{s}" for s in ("en", "ro")]
    if all(p.is_file() for p in train_paths):
        notes = ["WMT16 en-ro: train.{en,ro} is the training split, newsdev2016 validation, newstest2016 test"]
        return Raw(_aligned(*train_paths), test, str(data_dir / WMT_DIR), notes, dev)
    notes = ["WMT16 en-ro locally has only newsdev2016 (carved into train and validation) and newstest2016 (test); "
             "the full WMT16 training set (about 610k pairs) is on the hub only (wmt/wmt16 ro-en), or put it at "
             f"{WMT_DIR}/train.{{en,ro}}"]
    return Raw(dev, test, str(data_dir / WMT_DIR), notes)


def _aligned(source: Path, target: Path) -> list[Example]:
    en, ro = read_lines(source), read_lines(target)
    if len(en) != len(ro):
        raise TaskError(f"{source} has {len(en)} lines but {target} has {len(ro)}; the files must be line-aligned")
    return [Example((s,), t) for s, t in zip(en, ro)]
