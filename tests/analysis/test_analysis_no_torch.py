"""The statistics import no torch (STYLE.md rules 1 and 7), proven in a fresh interpreter.

Uses the shared probe (tests/import_probe.py): a meta-path finder installed
before the import records every attempt to import torch or transformers, even a guarded one.
scipy is loaded only when the KS test is first called, not at import time.
"""

from __future__ import annotations

from import_probe import run_probe


def test_importing_the_statistics_loads_no_torch_and_no_scipy():
    report = run_probe("import sys",
                       "import peftspace.analysis",
                       "from peftspace.analysis import edf, edf_at, normalized_edf, ks_distance, ks_test, bootstrap_ci, "
                       "bootstrap_difference, error_from_scores, rank_options, Ranking, Interval",
                       "import peftspace.analysis.stats, peftspace.analysis.ranking",
                       "assert 'scipy' not in sys.modules, 'scipy loaded at import time'")
    assert report == {"attempts": [], "loaded": []}


def test_every_statistic_runs_without_torch():
    report = run_probe("import numpy as np",
                       "import peftspace.analysis as a",
                       "e = a.error_from_scores([{'rte': 60.0, 'sst2': 80.0}, {'rte': 70.0, 'sst2': 90.0}], 'best')",
                       "a.edf(e); a.edf_at(e, 5.0); a.normalized_edf(e, [1e3, 1e5], bins=2)",
                       "a.ks_test([1, 2, 3], [2, 3, 4]); a.ks_distance([1.0], [2.0])",
                       "r = a.rank_options({'x': [1.0, 2.0, 3.0], 'y': [4.0, 5.0, 6.0]}, n_resamples=50, "
                       "rng=np.random.default_rng(0))",
                       "r.to_dict()")
    assert report == {"attempts": [], "loaded": []}
