"""Task files: your own task declared once in YAML or JSON, usable wherever a task name is.

    # tweets.yaml; paths are relative to this file
    name: tweets                  # default: the file's stem
    kind: classification          # or regression
    train: train.csv              # .csv, .tsv or .jsonl
    validation: dev.csv           # optional: carved from train when absent
    test: test.csv                # optional: carved from train when absent
    text_columns: [text]          # one column, or two for a sentence pair
    label_column: label
    metrics: [accuracy, f1_macro] # optional

A sweep stores the file's content and the SHA-256 of each data file (``TaskFile.stored``), not
paths, so a worker on another machine rebuilds the task from the store: it finds each data file under
its own ``--data-dir`` (by the path as written, then by file name), else where the sweep was created,
and refuses a file whose hash differs (``TaskFile.from_stored``).
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from peftspace.tasks.custom import CUSTOM_KINDS, checked_metrics
from peftspace.tasks.spec import TaskData, TaskError, task_spec

TASK_FILE_SUFFIXES = (".yaml", ".yml", ".json")
DATA_SUFFIXES = (".csv", ".tsv", ".jsonl")
DATA_ROLES = ("train", "validation", "test")
REQUIRED_KEYS = ("train", "text_columns", "label_column")
OPTIONAL_KEYS = ("name", "kind", "validation", "test", "metrics", "validation_size")
EXAMPLE = "train: train.csv, text_columns: [text], label_column: label (see peftspace.tasks.task_file)"


def is_task_file(reference) -> bool:
    """Whether a task reference names a task file (by its suffix) rather than a built-in task."""
    return isinstance(reference, (str, Path)) and Path(str(reference)).suffix.lower() in TASK_FILE_SUFFIXES


@dataclass(frozen=True)
class TaskFile:
    """A parsed task file: what it declares, and where its data files are on this machine.

    ``files`` maps each declared role (train, and validation/test when given) to the path as written in
    the file; ``paths`` to where that file is here; ``sha256`` to its content hash.
    """

    name: str
    kind: str
    text_columns: tuple[str, ...]
    label_column: str
    files: dict = field(hash=False)
    paths: dict = field(hash=False, compare=False)
    sha256: dict = field(hash=False)
    metrics: tuple[str, ...] | None = None
    validation_size: float | int = 0.1

    def __hash__(self) -> int:
        return hash((self.name, self.kind, self.text_columns, self.label_column, tuple(sorted(self.sha256.items()))))

    def load(self, seed: int = 0) -> TaskData:
        """The task's splits, as ``load_custom`` carves them for ``seed``."""
        from peftspace.tasks.custom import load_custom

        return load_custom(self.paths["train"], text_columns=list(self.text_columns), label_column=self.label_column,
                           kind=self.kind, seed=seed, test_path=self.paths.get("test"),
                           validation_path=self.paths.get("validation"), validation_size=self.validation_size,
                           name=self.name, metrics=self.metrics)

    def content(self) -> dict:
        """The declaration as JSON values, data files as written (what a sweep stores and compares)."""
        data = {"name": self.name, "kind": self.kind, **dict(self.files), "text_columns": list(self.text_columns),
                "label_column": self.label_column, "validation_size": self.validation_size}
        if self.metrics is not None:
            data["metrics"] = list(self.metrics)
        return data

    def stored(self) -> dict:
        """``content()`` with each data file's SHA-256: enough to rebuild the task and check its data elsewhere."""
        return {"task_file": self.content(), "sha256": dict(self.sha256)}

    def locations(self) -> dict:
        """Role -> absolute path of each data file on this machine (a hint for workers here)."""
        return {role: str(Path(p).resolve()) for role, p in self.paths.items()}

    @classmethod
    def from_stored(cls, stored: dict, data_dir=None, locations: dict | None = None) -> "TaskFile":
        """Rebuild a stored task file on this machine, checking each data file's hash.

        Each data file is looked for under ``data_dir`` (its path as written, then its file name), then at
        ``locations`` (where the sweep was created). The first that exists is used; a hash that differs
        is a TaskError naming the file, never a silent switch to other data.
        """
        if not isinstance(stored, dict) or not isinstance(stored.get("task_file"), dict):
            raise TaskError(f"a stored task file must be {{'task_file': ..., 'sha256': ...}}, not {stored!r}")
        content, hashes = stored["task_file"], stored.get("sha256") or {}
        paths = {}
        for role in DATA_ROLES:
            written = content.get(role)
            if written is None:
                continue
            candidates = []
            if data_dir is not None:
                if not Path(written).is_absolute():  # joined to an absolute path, data_dir would be ignored
                    candidates.append(Path(data_dir) / written)
                candidates.append(Path(data_dir) / Path(written).name)
            if locations and locations.get(role):
                candidates.append(Path(locations[role]))
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                tried = ", ".join(map(str, dict.fromkeys(candidates))) or "nowhere (no --data-dir given)"
                raise TaskError(f"task {content.get('name')!r}: its {role} file {written!r} was not found; looked in {tried}. "
                                f"Give --data-dir DIR holding it")
            digest = file_sha256(found)
            if hashes.get(role) != digest:
                raise TaskError(f"task {content.get('name')!r}: {found} differs from the {role} file the sweep was created "
                                f"with (sha256 {digest[:12]}... here, {str(hashes.get(role))[:12]}... stored); refusing to "
                                f"train on other data")
            paths[role] = str(found)
        return _parse(content, Path("."), where=f"stored task {content.get('name')!r}", paths=paths,
                      hashes={role: hashes[role] for role in paths})


def read_task_file(path) -> TaskFile:
    """Parse and check a task file; every problem is one TaskError naming the file and the key."""
    import yaml

    path = Path(path)
    if path.suffix.lower() not in TASK_FILE_SUFFIXES:
        raise TaskError(f"{path}: a task file must be .yaml, .yml or .json")
    if not path.is_file():
        raise TaskError(f"task file not found: {path}" + ("" if path.exists() else " (no such file)"))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as error:
        raise TaskError(f"{path} is not valid YAML/JSON: {str(error).splitlines()[0]}") from None
    return _parse(data, path.parent, where=str(path), default_name=path.stem)


def _parse(data, base: Path, *, where: str, default_name: str | None = None, paths: dict | None = None,
           hashes: dict | None = None) -> TaskFile:
    if not isinstance(data, dict):
        raise TaskError(f"{where}: a task file holds a mapping ({EXAMPLE}), not {type(data).__name__}")
    problems = []
    known = REQUIRED_KEYS + OPTIONAL_KEYS
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            problems.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    problems += [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in data]
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip() or "," in name or "/" in name:
        problems.append(f"name {name!r} must be a non-empty string without ',' or '/'")
    kind = data.get("kind", "classification")
    if not isinstance(kind, str) or kind not in CUSTOM_KINDS:
        problems.append(f"kind {kind!r} must be one of {list(CUSTOM_KINDS)}")
    columns = data.get("text_columns")
    columns = [columns] if isinstance(columns, str) else columns
    if "text_columns" in data and (not isinstance(columns, list) or not 1 <= len(columns) <= 2
                                   or not all(isinstance(c, str) and c for c in columns)):
        problems.append(f"text_columns {data['text_columns']!r} must be one column name or a list of one or two")
    label = data.get("label_column")
    if "label_column" in data and (not isinstance(label, str) or not label):
        problems.append(f"label_column {label!r} must be a column name")
    if isinstance(columns, list) and isinstance(label, str) and label in columns:
        problems.append(f"label_column {label!r} is also a text column")
    metrics = data.get("metrics")
    if metrics is not None and isinstance(kind, str) and kind in CUSTOM_KINDS:
        metrics = [metrics] if isinstance(metrics, str) else metrics
        try:
            metrics = checked_metrics(kind, metrics)
        except TaskError as error:
            problems.append(str(error))
    size = data.get("validation_size", 0.1)
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not (0 < size < 1 or (isinstance(size, int) and size >= 1)):
        problems.append(f"validation_size {size!r} must be a fraction in (0, 1) or a count >= 1")
    files = {}
    for role in DATA_ROLES:
        value = data.get(role)
        if value is None and (role != "train" or role not in data):  # validation/test: null is absent
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{role} {value!r} must be a file path (.csv, .tsv or .jsonl)")
        elif Path(value).suffix.lower() not in DATA_SUFFIXES:
            problems.append(f"{role} {value!r}: a data file must be .csv, .tsv or .jsonl")
        else:
            files[role] = value
    if problems:
        raise TaskError(f"{where}: " + "; ".join(problems) + f" (a task file looks like {EXAMPLE})")
    if paths is None:
        paths = {}
        for role, written in files.items():
            located = Path(written) if Path(written).is_absolute() else base / written
            if not located.is_file():
                problems.append(f"{role} file {written!r} not found (looked at {located})")
            paths[role] = str(located)
        if problems:
            raise TaskError(f"{where}: " + "; ".join(problems))
    return TaskFile(name=name.strip(), kind=kind, text_columns=tuple(columns), label_column=label, files=files, paths=paths,
                    sha256=hashes or {role: file_sha256(p) for role, p in paths.items()},
                    metrics=tuple(metrics) if metrics is not None else None, validation_size=size)


def resolve_tasks(tasks) -> list:
    """The tasks of a sweep from a list or one comma-separated string: each a canonical built-in task name or a
    ``TaskFile`` (from a task file's path). Unknown tasks, bad task files and two tasks of one name raise."""
    items = [t.strip() if isinstance(t, str) else t for t in (tasks.split(",") if isinstance(tasks, str) else tasks)]
    if not items or any(t == "" for t in items):
        raise TaskError(f"tasks {tasks!r}: give one or more task names or task files, comma-separated")
    resolved = []
    for item in items:
        if isinstance(item, TaskFile):
            resolved.append(item)
        elif is_task_file(item):
            resolved.append(read_task_file(item))
            resolved[-1].load(seed=0)  # columns, labels and sizes checked now, not in a worker after queueing
        else:
            resolved.append(task_spec(item).name)
    names = task_names(resolved)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TaskError(f"tasks {[str(t) for t in items]}: more than one task is named {repeated}; give each task file "
                        f"its own 'name'")
    return resolved


def task_names(tasks) -> list[str]:
    """The names of resolved tasks (``resolve_tasks``): records, study names and tables use them."""
    return [task if isinstance(task, str) else task.name for task in tasks]


def stored_task_files(tasks) -> dict | None:
    """Name -> ``TaskFile.stored()`` of the task files among resolved tasks (None when there are none)."""
    return {t.name: t.stored() for t in tasks if isinstance(t, TaskFile)} or None


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
