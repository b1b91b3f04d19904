"""Dynamic trust: how much each bank's update agrees with the others, carried across rounds.

Every round, each bank evaluates every other bank's candidate update on its own
validation data: the rise in log loss of the uniform average of the candidates (added
to the current global model) when that candidate is left out. A candidate's
**agreement score** is the median of what the *other* banks measured (its own opinion
does not count; one liar cannot move a median of four), compared with the other
candidates: with m the median and d the median absolute deviation of the candidates'
contributions, the score is 1 + (contribution − m) / (3d + |m|), clipped to [0, 1] —
typical updates score near 1, an update that hurts where the others help scores 0. For
weight vectors (linear models) the score is also capped by the distance to the
coordinate-wise median update. **Trust** is an exponential average of the scores,
starting at 1; the aggregation weight is trust × samples over the updates scoring at
least MIN_SCORE (0.25) this round, normalised to sum to 1. When some updates score below
MIN_SCORE, the server has the rest evaluated again among themselves and uses those
scores for them (the ServerApp does this; see `ledgerml.federated.apps`).

    state = TrustState.start(["B1", "B2", "B3"])
    scores = agreement_scores({"B1": {"B2": 0.01, "B3": -0.2}, ...})
    state = state.update(scores)
    weights = state.weights(scores, samples)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: trust_t = DECAY * trust_{t-1} + (1 - DECAY) * score_t
DECAY = 0.5
#: an update scoring below this in a round is left out of that round's aggregate
MIN_SCORE = 0.25


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, np.float64))) if len(values) else 0.0


def agreement_scores(improvement: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Scores in [0, 1] from `improvement[evaluator][candidate]` (relative loss decrease)."""
    candidates = sorted({c for row in improvement.values() for c in row})
    raw: dict[str, float] = {}
    for c in candidates:
        others = [row[c] for ev, row in improvement.items() if ev != c and c in row]
        if not others:  # a lone bank: fall back to its own measurement
            others = [row[c] for row in improvement.values() if c in row]
        raw[c] = _median(others)
    values = list(raw.values())
    mid = _median(values)
    spread = 3 * _median([abs(v - mid) for v in values]) + abs(mid)
    if spread <= 0:
        return {c: 1.0 if v >= mid else 0.0 for c, v in raw.items()}
    return {c: float(np.clip(1.0 + (v - mid) / spread, 0.0, 1.0)) for c, v in raw.items()}


def distance_scores(updates: Mapping[str, np.ndarray]) -> dict[str, float]:
    """min(1, median distance / own distance) to the coordinate-wise median update."""
    banks = sorted(updates)
    if len(banks) < 3:
        return {b: 1.0 for b in banks}
    stack = np.stack([np.asarray(updates[b], np.float64) for b in banks])
    med = np.median(stack, axis=0)
    dist = np.linalg.norm(stack - med, axis=1)
    ref = float(np.median(dist))
    return {
        b: 1.0 if d <= ref or d == 0 else float(ref / d) for b, d in zip(banks, dist, strict=True)
    }


@dataclass(frozen=True)
class TrustState:
    """Per-bank trust, in [0, 1]."""

    trust: Mapping[str, float]

    @classmethod
    def start(cls, banks: Sequence[str]) -> TrustState:
        return cls({b: 1.0 for b in banks})

    def update(self, scores: Mapping[str, float]) -> TrustState:
        """Blend this round's scores in; a bank without a score (rejected) scores 0."""
        return TrustState(
            {b: DECAY * t + (1 - DECAY) * float(scores.get(b, 0.0)) for b, t in self.trust.items()}
        )

    def weights(self, scores: Mapping[str, float], samples: Mapping[str, int]) -> dict[str, float]:
        """Aggregation weights: trust × samples over the updates scoring at least
        MIN_SCORE this round, summing to 1."""
        raw = {
            b: self.trust[b] * samples[b] if scores.get(b, 0.0) >= MIN_SCORE else 0.0
            for b in samples
        }
        total = sum(raw.values())
        if total <= 0:
            return {b: 0.0 for b in samples}
        return {b: v / total for b, v in raw.items()}
