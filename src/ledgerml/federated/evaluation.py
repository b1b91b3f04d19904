"""Detection metrics on held-out transactions, and the baselines federated learning is
measured against.

A transaction seen by two banks is scored by both (each from its own view); its score
is the higher of the two — the consortium flags it if either bank's model does. Every
contender is scored on the same held-out transactions: the federated model, each bank's
local-only model (one model per bank, applied by every bank to its view, as if that
bank's model were shared), and the centralized model trained on the whole table with
whole-table features (what no consortium may legally build; a reference, not an upper
bound: it has 1/N of the federated model's trees and scores each transaction once, where
the federated score is the higher of two banks' views — issue 15). Two more references
separate those causes: the centralized model with the federated model's tree budget and
aggregation (`centralized_same_budget`), and one model on the banks' own views pooled
(`pooled_bank_views`), scored like the federated one and from the sender's bank's view
only (`pooled_bank_views_sender_only`). Over several seeds, `seed_summary`
gives each row's mean and 95% t-interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ledgerml.mlops import average_precision

#: the false-positive rate AML alert queues are sized by
FPR = 0.01


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float = FPR) -> float:
    """Share of laundering transactions scored above the threshold that flags `fpr` of
    the legitimate ones (ties at the threshold count as not flagged)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    if not y.any() or y.all():
        return 0.0
    neg = np.sort(s[~y])[::-1]
    k = int(np.floor(fpr * len(neg)))
    threshold = neg[k] if k < len(neg) else -np.inf
    return float((s[y] > threshold).mean())


def metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "recall_at_1pct_fpr": recall_at_fpr(scores, labels),
        "auprc": average_precision(scores, labels),
    }


def transaction_scores(
    n_tx: int, positions: Mapping[str, np.ndarray], scores: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Per-transaction score: the max over the banks' views (positions index the test
    transactions each view holds)."""
    out = np.full(n_tx, -np.inf)
    for bank, pos in positions.items():
        np.maximum.at(out, pos, np.asarray(scores[bank], np.float64))
    return out


def sender_scores(
    n_tx: int,
    positions: Mapping[str, np.ndarray],
    scores: Mapping[str, np.ndarray],
    sends: Mapping[str, np.ndarray],
) -> np.ndarray:
    """Per-transaction score from the sending bank's view only (`sends[bank]`: the rows of
    its view its customers send): compared with `transaction_scores`, what keeping the
    higher of two views adds."""
    out = np.full(n_tx, -np.inf)
    for bank, pos in positions.items():
        own = np.asarray(sends[bank], bool)
        out[pos[own]] = np.asarray(scores[bank], np.float64)[own]
    return out


def improvement(federated: float, baseline: float) -> float:
    """Relative improvement (0.35 = 35% higher); a zero baseline counts as tiny."""
    return float(federated / max(baseline, 1e-12) - 1.0)


#: two-sided 95% Student t quantiles (0.975) for 1..10 degrees of freedom (scipy beyond)
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281)
#: the rows `ledgerml bench fl --seeds K` summarises, in print order
SEED_ROWS = (
    "federated",
    "local_mean",
    "centralized",
    "centralized_same_budget",
    "pooled_bank_views",
    "pooled_bank_views_sender_only",
)


@dataclass(frozen=True)
class Interval:
    """A metric's mean over seeds with its 95% t-interval: one run per seed is one
    sample, so the interval says how far the mean could move with other seeds."""

    mean: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def t_interval(values: Sequence[float]) -> Interval:
    """Mean and 95% Student-t interval (n - 1 degrees of freedom)."""
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        raise ValueError(f"values: a t-interval needs at least 2, got {len(v)}")
    if not np.isfinite(v).all():
        raise ValueError("values: must be finite")
    df = len(v) - 1
    if df <= len(_T975):
        q = _T975[df - 1]
    else:
        from scipy import stats

        q = float(stats.t.ppf(0.975, df))
    mean = float(v.mean())
    half = q * float(v.std(ddof=1)) / np.sqrt(len(v))
    return Interval(mean, mean - half, mean + half, len(v))


def seed_summary(
    comparisons: Sequence[Mapping[str, Mapping[str, float]]],
    rows: Sequence[str] = SEED_ROWS,
    baseline: str = "federated",
) -> dict[str, dict[str, dict[str, Interval]]]:
    """Per row and metric, the interval over seeds (`comparisons`: one run's comparison
    per seed); and, paired by seed, of `baseline` minus each other row — the difference
    is what decides whether a reference beats the federated model."""
    present = [r for r in rows if all(r in c for c in comparisons)]
    if baseline not in present:
        raise ValueError(f"comparisons: every run needs the {baseline!r} row")
    metric_names = sorted(comparisons[0][baseline])
    out: dict[str, dict[str, dict[str, Interval]]] = {"rows": {}, "differences": {}}
    for r in present:
        out["rows"][r] = {m: t_interval([c[r][m] for c in comparisons]) for m in metric_names}
        if r != baseline:
            out["differences"][f"{baseline} - {r}"] = {
                m: t_interval([c[baseline][m] - c[r][m] for c in comparisons]) for m in metric_names
            }
    return out
