"""Statistics for design-space comparison (numpy, and scipy for the KS p-value); no torch.

Errors from task scores, EDFs (``F[i] = (i + 1) / n``), the complexity-normalized EDF, KS distance
and test, bootstrap intervals, and a ranking of a component's options with a verdict. The
conventions are stated in :mod:`peftspace.analysis.stats`.
"""

from peftspace.analysis.ranking import DECIDED, UNDECIDED, OptionSummary, Ranking, rank_options
from peftspace.analysis.stats import (
    Interval,
    NormalizedEDF,
    as_errors,
    bootstrap_ci,
    bootstrap_difference,
    edf,
    edf_at,
    error_from_scores,
    ks_distance,
    ks_test,
    normalized_edf,
)

__all__ = [
    "DECIDED", "UNDECIDED", "Interval", "NormalizedEDF", "OptionSummary", "Ranking", "as_errors", "bootstrap_ci",
    "bootstrap_difference", "edf", "edf_at", "error_from_scores", "ks_distance", "ks_test", "normalized_edf",
    "rank_options",
]
