"""A trained run on disk: the design (peftspace format), the task head, and the trial record."""

from __future__ import annotations

import json
from pathlib import Path

from peftspace.design.errors import ModelError

DESIGN_DIR = "design"
HEAD_FILE = "head.safetensors"
RECORD_FILE = "metrics.json"


def save_run(trained, out_dir: str | Path, task_source: dict) -> Path:
    """Write ``trained`` (a ``TrainedTrial``) so that ``load_run`` can re-score it."""
    from safetensors.torch import save_file

    import peftspace

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = dict(trained.record, task_source=task_source)
    if trained.model is not None:
        peftspace.save(trained.model, out_dir / DESIGN_DIR)
        head = {n: p.detach().contiguous() for n, p in trained.model.named_parameters()
                if p.requires_grad and "peftspace_" not in n}
        save_file(head, str(out_dir / HEAD_FILE))
    (out_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out_dir


def read_record(run_dir: str | Path) -> dict:
    path = Path(run_dir) / RECORD_FILE
    if not path.is_file():
        raise ModelError(f"{str(run_dir)!r} is not a peftspace run: {RECORD_FILE} is missing")
    return json.loads(path.read_text())


def load_run(run_dir: str | Path, data):
    """The trained model and its task format, rebuilt from the backbone and the saved parts."""
    from safetensors.torch import load_file

    import peftspace
    from peftspace.formats import make_format
    from peftspace.models import load_backbone, load_tokenizer

    run_dir, record = Path(run_dir), read_record(run_dir)
    if record.get("status") != "ok":
        raise ModelError(f"run {str(run_dir)!r} failed ({record.get('reason')}); nothing to evaluate")
    schedule = record["schedule"]
    tokenizer = load_tokenizer(record["model"])
    fmt = make_format(record["format"], data.spec, tokenizer, schedule["max_length"], schedule["max_target_length"])
    model = load_backbone(record["model"], fmt.model_class(), **fmt.model_kwargs())
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    peftspace.load(model, run_dir / DESIGN_DIR)
    head = load_file(str(run_dir / HEAD_FILE))
    parameters = dict(model.named_parameters())
    unknown = sorted(set(head) - set(parameters))
    if unknown:
        raise ModelError(f"the saved head does not fit this model: unknown {unknown[:3]}")
    for name, tensor in head.items():
        parameters[name].data.copy_(tensor)
    return model.eval(), fmt
