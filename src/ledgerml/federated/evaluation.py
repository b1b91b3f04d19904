"""Detection metrics on held-out transactions, and the baselines federated learning is
measured against.

A transaction seen by two banks is scored by both (each from its own view); its score
is the higher of the two — the consortium flags it if either bank's model does. Every
contender is scored on the same held-out transactions: the federated model, each bank's
local-only model (one model per bank, applied by every bank to its view, as if that
bank's model were shared), and the centralized model trained on the whole table with
whole-table features (what no consortium may legally build; a reference, not an upper
bound: it has 1/N of the federated model's trees and scores each transaction once, where
the federated score is the higher of two banks' views — issue 15).
"""

from __future__ import annotations

from collections.abc import Mapping

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


def improvement(federated: float, baseline: float) -> float:
    """Relative improvement (0.35 = 35% higher); a zero baseline counts as tiny."""
    return float(federated / max(baseline, 1e-12) - 1.0)
