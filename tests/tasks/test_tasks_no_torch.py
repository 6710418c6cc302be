"""The task layer imports no torch (STYLE.md rule 1), proven in a fresh interpreter.

Uses the shared probe (tests/import_probe.py): a meta-path finder installed
before the import records every attempt to import torch or transformers, even a guarded one. On top
of that, the libraries only needed to score (sacrebleu, rouge_score, scikit-learn, scipy) and the
optional hub loader (datasets) must not load at import time either.
"""

from __future__ import annotations

import pytest

from import_probe import run_probe

NOT_AT_IMPORT = "{'sacrebleu', 'rouge_score', 'sklearn', 'scipy', 'datasets'}"
CHECK_LAZY = f"import sys; lazy = sorted({{m.split('.')[0] for m in sys.modules}} & {NOT_AT_IMPORT}); assert not lazy, lazy"


def test_importing_the_task_layer_loads_no_torch_and_no_metric_library():
    report = run_probe("import peftspace.tasks",
                       "from peftspace.tasks import TaskSpec, Example, TaskData, TaskError, TASKS, task_spec, load_task, "
                       "load_custom, compute_metrics, glue_average, main_score",
                       CHECK_LAZY)
    assert report == {"attempts": [], "loaded": []}


def test_loading_and_scoring_needs_no_torch():
    report = run_probe("import os; os.environ['HF_DATASETS_OFFLINE'] = '1'",
                       "from pathlib import Path",
                       "import peftspace.tasks as t",
                       "root = Path(t.__file__).resolve().parents[3].parent / 'shared' / 'data'",
                       "d = t.load_task('rte', root)",
                       CHECK_LAZY,
                       "t.compute_metrics(d.spec, [e.label for e in d.test], [e.label for e in d.test])",
                       "t.compute_metrics('xsum', ['a b'], ['a b']); t.compute_metrics('wmt16', ['a b c d'], ['a b c d'])")
    assert report == {"attempts": [], "loaded": []}


def test_the_probes_do_see_an_eager_import():
    report = run_probe("try:\n    import torch\nexcept ImportError:\n    pass")
    assert report["attempts"][:1] == ["torch"]
    with pytest.raises(AssertionError, match="scipy"):
        run_probe("import scipy.stats", CHECK_LAZY)
