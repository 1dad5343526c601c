"""The project's numbers: progress, agreement, annotators, leaderboard.

One service, `project_stats`, feeds `project_stats --json`, the stats API, the dashboard
and the dataset card, so they always agree. A figure that cannot be computed (yet) is None.

Speed, and why it is done this way. A project can hold a million judgments, and the
figures (Krippendorff's alpha, leave-one-out agreement, Bradley-Terry with a bootstrap)
need every judgment's answer, not a sum the database can keep. So:

1. the judgments are read as one narrow table of integers (the two-response case taken
   apart in SQL), in chunks straight into compact numpy arrays (see `loading.py`), and
   everything after that is vectorized numpy: no Python loop per judgment, and no
   intermediate whose size is a multiple of the project's (Krippendorff's coincidences are
   summed over chunks of units too). A million judgments take a few seconds, about half of
   it in PostgreSQL, and well under 250 MB over a small project's peak (see
   bench/results/dashboard_time.md and stats_memory.md);
2. the result is stored (one StatsSnapshot row per project) with the number of the
   project's judgments and the time of its latest judgment or revision (`updated_at`) it
   was computed at, so any new or revised judgment makes it out of date, and until then a
   call costs three small queries: that key (count and latest update of the judgments),
   the progress counters (items, complete), both read fresh on every call, and the row.
   Changes the key does not see (a reference or gold answer edited, a user renamed) show
   within STATS_CACHE_SECONDS. (Other tie policies than the default are kept in Django's
   cache under the same key.)
3. `project_stats` (the command, the API, the dataset card) always answers for the current
   judgments, computing when the stored document is out of date. The dashboard never makes
   a manager wait for that on a big project (`snapshot.py`): above
   LABELING_STATS_INLINE_JUDGMENTS it shows the stored document at once, with its age and the
   judgments made since, and one background task per project recomputes it.

Storing alone would not do (the first view after each new judgment would pay for a full
read), nor would aggregating in the database alone (alpha, leave-one-out consensus and the
bootstrap are not sums), hence both, and the background refresh for what is left.

Gold items are quality probes that every annotator answers: they feed gold accuracy and
are left out of agreement and the leaderboard.
"""

from labeling.services.metrics.annotators import (
    FLAGS,
    LOW_AGREEMENT,
    LOW_GOLD_ACCURACY,
    MIN_AGREEMENT_COMPARISONS,
    MIN_GOLD_COMPARISONS,
    MIN_JUDGMENTS,
    POSITION_BIAS_MIN_EFFECT,
    POSITION_BIAS_P,
    TOO_FAST_SECONDS,
    TOO_FAST_SHARE,
)
from labeling.services.metrics.snapshot import dashboard_stats
from labeling.services.metrics.stats import STATS_CACHE_SECONDS, project_stats

__all__ = [
    "FLAGS",
    "LOW_AGREEMENT",
    "LOW_GOLD_ACCURACY",
    "MIN_AGREEMENT_COMPARISONS",
    "MIN_GOLD_COMPARISONS",
    "MIN_JUDGMENTS",
    "POSITION_BIAS_MIN_EFFECT",
    "POSITION_BIAS_P",
    "STATS_CACHE_SECONDS",
    "TOO_FAST_SECONDS",
    "TOO_FAST_SHARE",
    "dashboard_stats",
    "project_stats",
]
