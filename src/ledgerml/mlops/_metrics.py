"""Fraud metrics on scores and 0/1 labels (numpy only; scikit-learn where it is the reference).

Why hand-written at all: "false positives at 80% recall" is the figure a fraud team
staffs its review queue by, and it has to be computed the same way for the model and
every baseline. The threshold is the highest score at which the recall reaches the
target (ties broken by row order, stable), so the count is exact and reproducible.
"""

from __future__ import annotations

import math
from typing import Any

RECALL = 0.8
TOP_K = 100
ECE_BINS = 10

#: The keys every metric dict carries (other modules and the policy packs read them).
METRIC_KEYS = (
    "auprc",
    "roc_auc",
    "fp_at_80_recall",
    "fpr_at_80_recall",
    "precision_at_100",
    "brier",
    "ece",
    "fp_ratio_vs_logreg",
    "fp_ratio_vs_rules",
)


def average_precision(scores: Any, labels: Any) -> float:
    """AUPRC as average precision (step-wise, no interpolation), stable order on ties."""
    import numpy as np

    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(labels)[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1))


def average_precision_both_ways(scores: Any, labels: Any) -> tuple[float, float]:
    """(`average_precision(scores)`, `average_precision(-scores)`) from one unstable sort.

    Why: the leakage screen ranks every feature both ways on the whole training window (on
    ULB 30 features x 2 stable argsorts of 228k rows, most of `train`'s screening time).
    Average precision needs only each positive's rank, so: one `np.sort`, two binary
    searches per positive, and the stable order on ties (by row) counted among the rows
    that share a positive's value. Same ranks, so the same figure as `average_precision`
    both ways (to rounding in the last bits: the sum runs over the positives only)."""
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    hits = np.asarray(labels) > 0
    pos = np.flatnonzero(hits)
    m = len(pos)
    if m == 0:
        return 0.0, 0.0
    ordered = np.sort(s)
    v = s[pos]
    above = len(s) - np.searchsorted(ordered, v, side="right")  # rows with a higher score
    below = np.searchsorted(ordered, v, side="left")  # rows with a lower score
    # rows with the same value and an earlier row number come first (stable order on ties)
    tied = np.flatnonzero(np.isin(s, v))
    by_value = np.argsort(s[tied], kind="stable")  # row order kept within a value
    tv = s[tied][by_value]
    start = np.searchsorted(tv, tv, side="left")
    before = np.empty(len(tied), dtype=np.int64)
    before[by_value] = np.arange(len(tied)) - start
    earlier = before[np.searchsorted(tied, pos)]
    # the same counts among the positives alone: how many positives rank at or before each
    pv = np.sort(v)
    p_above = m - np.searchsorted(pv, v, side="right")
    p_below = np.searchsorted(pv, v, side="left")
    p_order = np.argsort(v, kind="stable")
    p_start = np.searchsorted(v[p_order], v[p_order], side="left")
    p_before = np.empty(m, dtype=np.int64)
    p_before[p_order] = np.arange(m) - p_start

    def ap(ahead: Any, p_ahead: Any) -> float:
        rank = ahead + earlier + 1
        found = p_ahead + p_before + 1
        return float(np.sum((found / rank)[np.argsort(rank, kind="stable")]) / m)

    return ap(above, p_above), ap(below, p_below)


def fp_at_recall(scores: Any, labels: Any, recall: float = RECALL) -> tuple[int, float, float]:
    """(false-positive count, false-positive rate, threshold) at the first cut reaching `recall`."""
    import numpy as np

    scores = np.asarray(scores)
    labels = np.asarray(labels)
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    tp = np.cumsum(hits)
    positives = int(hits.sum())
    negatives = int(len(labels) - positives)
    if positives == 0:
        return 0, 0.0, float("nan")
    k = int(np.searchsorted(tp, math.ceil(recall * positives - 1e-9)))
    fp = int(k + 1 - tp[k])
    return fp, fp / max(negatives, 1), float(scores[order][k])


def fpr_at_recall(scores: Any, labels: Any, recall: float) -> tuple[float, float]:
    """(false-positive rate, threshold) at `recall`: the demo's signature."""
    _, rate, threshold = fp_at_recall(scores, labels, recall)
    return rate, threshold


def precision_at_k(scores: Any, labels: Any, k: int = TOP_K) -> float:
    """Share of frauds among the k highest scores: the first page of a review queue."""
    import numpy as np

    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return float(np.asarray(labels)[order].sum() / max(len(order), 1))


def expected_calibration_error(probs: Any, labels: Any, bins: int = ECE_BINS) -> float:
    """ECE with equal-width bins on [0, 1]: |mean prob - fraud rate| weighted by bin size."""
    import numpy as np

    probs = np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0)
    labels = np.asarray(labels, dtype=np.float64)
    idx = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(probs[mask].mean() - labels[mask].mean())
    return float(total / max(len(probs), 1))


def score_metrics(probs: Any, labels: Any) -> dict[str, float]:
    """Every metric except the ratios (they need the other contenders' counts)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    fp, fpr, threshold = fp_at_recall(probs, labels)
    both = 0 < labels.sum() < len(labels)
    return {
        "auprc": average_precision(probs, labels),
        "roc_auc": float(roc_auc_score(labels, probs)) if both else 0.5,
        "fp_at_80_recall": float(fp),
        "fpr_at_80_recall": fpr,
        "precision_at_100": precision_at_k(probs, labels),
        "brier": float(np.mean((probs - labels) ** 2)),
        "ece": expected_calibration_error(probs, labels),
        "threshold_at_80_recall": threshold if math.isfinite(threshold) else 0.0,
    }


def fp_ratio(fp: float, baseline_fp: float) -> float:
    """model FP / baseline FP; the denominator is floored at 1 (a ledger takes no infinities)."""
    return float(fp) / max(float(baseline_fp), 1.0)


#: Bootstrap draws for the FP-ratio interval, and the interval's coverage.
BOOTSTRAP_DRAWS = 500
INTERVAL = 0.90


def fp_ratio_interval(
    model_scores: Any,
    baseline_scores: Any,
    labels: Any,
    *,
    seed: Any,
    draws: int = BOOTSTRAP_DRAWS,
    coverage: float = INTERVAL,
    recall: float = RECALL,
) -> dict[str, Any]:
    """A paired, class-stratified bootstrap interval for model FP / baseline FP at `recall`.

    Why: with 20-50 frauds in a window, "false positives at 80% recall" is decided by the
    two or three frauds ranked lowest, and a single ratio cannot say whether a model is
    worse or just unlucky. Each draw resamples the window's frauds and its legitimate rows
    separately, with replacement (so every draw has the same number of frauds), and scores
    both contenders on the *same* draw. The count is `fp_at_recall`'s: the first cut in
    score order (ties by row order) whose resampled frauds reach `recall`. A draw where the
    baseline has no false positive has no ratio (counted in `undefined`, as x/0 is
    everywhere else); the interval is over the defined draws, None if fewer than half are.
    Same scores and seed, same interval.
    """
    import numpy as np

    labels = np.asarray(labels) > 0
    positives, negatives = int(labels.sum()), int((~labels).sum())
    rng = np.random.default_rng(seed)
    # each draw: which of the frauds, and which of the legitimate rows (with replacement)
    drawn_pos = rng.integers(0, positives, size=(draws, positives), dtype=np.int32)
    drawn_neg = rng.integers(0, negatives, size=(draws, negatives), dtype=np.int32)
    model_fp = fp_at_recall_resampled(model_scores, labels, drawn_pos, drawn_neg, recall)
    base_fp = fp_at_recall_resampled(baseline_scores, labels, drawn_pos, drawn_neg, recall)
    defined = base_fp > 0
    ratios = model_fp[defined] / base_fp[defined]
    enough = 2 * len(ratios) >= draws
    low, high = ((1 - coverage) / 2, (1 + coverage) / 2)
    return {
        "low": round(float(np.quantile(ratios, low)), 6) if enough else None,
        "high": round(float(np.quantile(ratios, high)), 6) if enough else None,
        "coverage": coverage,
        "draws": draws,
        "undefined": int(draws - len(ratios)),
        "worse_share": round(float((ratios > 1).mean()), 6) if len(ratios) else None,
    }


def fp_at_recall_resampled(
    scores: Any, labels: Any, drawn_pos: Any, drawn_neg: Any, recall: float = RECALL
) -> Any:
    """`fp_at_recall`'s count on each resample, without building the resamples.

    Draw d holds the frauds numbered `drawn_pos[d]` (0 = the first fraud in row order) and
    the legitimate rows numbered `drawn_neg[d]`. It equals `fp_at_recall` on those rows
    laid out in row order (tested): the cut is the rank of the draw's `need`-th best-ranked
    fraud, and the count is the drawn legitimate rows ranked above it.
    """
    import numpy as np

    labels = np.asarray(labels) > 0
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    need = math.ceil(recall * drawn_pos.shape[1] - 1e-9)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    pos_rank = np.sort(rank[pos])
    cut = np.sort(rank[pos][drawn_pos], axis=1)[:, need - 1]
    # legitimate rows ranked above the cut, and each legitimate row's place among them
    above = cut - np.searchsorted(pos_rank, cut)
    neg_place = rank[neg] - np.searchsorted(pos_rank, rank[neg])
    return (neg_place[drawn_neg] < above[:, None]).sum(axis=1)
