"""Statistics for design-space comparison (numpy, and scipy for the KS p-value); no torch.

Racing on paired blocks with family-wise error control (:mod:`peftspace.analysis.racing`), strategy
effects from one pool (:mod:`peftspace.analysis.effects`), simulations with known truth
(:mod:`peftspace.analysis.simulate`, :mod:`peftspace.analysis.pool_search`). Errors from task scores, EDFs (``F[i] = (i + 1) / n``), the complexity-normalized EDF, KS distance
and test, bootstrap intervals, and a ranking of a component's options with a verdict. The
conventions are stated in :mod:`peftspace.analysis.stats`.
"""

from peftspace.analysis.effects import EffectsFit, assignment_matrix, best_assignments, fill_pool_failures, fit_effects
from peftspace.analysis.racing import RacePlan, RaceResult, holm, paired_test, race, replay
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
    "EffectsFit", "RacePlan", "RaceResult", "assignment_matrix", "best_assignments", "fill_pool_failures", "fit_effects", "holm",
    "paired_test", "race", "replay",
    "DECIDED", "UNDECIDED", "Interval", "NormalizedEDF", "OptionSummary", "Ranking", "as_errors", "bootstrap_ci",
    "bootstrap_difference", "edf", "edf_at", "error_from_scores", "ks_distance", "ks_test", "normalized_edf",
    "rank_options",
]
