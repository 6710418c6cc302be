"""Tasks, data and metrics: GLUE, SuperGLUE, XSum, WMT16 en-ro and your own CSV/TSV/JSONL (or a task file). Imports no torch.

    >>> data = load_task("sst2", "shared/data", seed=0)    # local files, else the Hugging Face hub
    >>> data.sizes, data.notes                              # dev is the test split; validation carved from train
    >>> compute_metrics(data.spec, predictions, [e.label for e in data.test])

Every score is on a 0-100 scale; ``main_score`` and ``glue_average`` document how they average.
"""

from peftspace.tasks.custom import load_custom
from peftspace.tasks.load import load_task
from peftspace.tasks.metrics import compute_metrics, glue_average, main_score
from peftspace.tasks.spec import TASKS, Example, TaskData, TaskError, TaskSpec, format_prompt, references, task_spec
from peftspace.tasks.task_file import TaskFile, is_task_file, read_task_file

__all__ = [
    "TASKS", "Example", "TaskData", "TaskError", "TaskFile", "TaskSpec", "compute_metrics", "format_prompt", "glue_average",
    "is_task_file", "load_custom", "load_task", "main_score", "read_task_file", "references", "task_spec",
]
