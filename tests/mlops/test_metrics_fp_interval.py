"""The bootstrap interval of the FP ratio: exact per draw, paired, deterministic.

`fp_at_recall_resampled` must give, for every draw, exactly what `fp_at_recall` gives on
that resample written out row by row, ties included; the interval built on it must say
"worse" only when the model is worse on most resamples.
"""

from __future__ import annotations

import numpy as np
import pytest

from ledgerml.mlops import _metrics


def _window(seed: int, frauds: int = 24, rows: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.zeros(rows, dtype=bool)
    y[rng.choice(rows, frauds, replace=False)] = True
    return rng.normal(size=rows) + 2.5 * y, y


@pytest.mark.parametrize("ties", [False, True])
def test_each_draw_equals_fp_at_recall_on_the_written_out_resample(ties: bool) -> None:
    scores, y = _window(0)
    if ties:
        scores = np.round(scores, 1)  # many equal scores: order by row decides
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    rng = np.random.default_rng(5)
    drawn_pos = rng.integers(0, len(pos), size=(60, len(pos)), dtype=np.int32)
    drawn_neg = rng.integers(0, len(neg), size=(60, len(neg)), dtype=np.int32)
    fast = _metrics.fp_at_recall_resampled(scores, y, drawn_pos, drawn_neg)
    for d in range(60):
        rows = np.sort(np.concatenate([pos[drawn_pos[d]], neg[drawn_neg[d]]]))  # row order
        assert fast[d] == _metrics.fp_at_recall(scores[rows], y[rows])[0], d
    # the identity draw is the window itself
    identity = _metrics.fp_at_recall_resampled(
        scores, y, np.arange(len(pos))[None, :], np.arange(len(neg))[None, :]
    )
    assert identity[0] == _metrics.fp_at_recall(scores, y)[0]


def test_the_same_model_twice_is_exactly_one() -> None:
    scores, y = _window(1)
    got = _metrics.fp_ratio_interval(scores, scores, y, seed=0, draws=200)
    assert got["low"] == got["high"] == 1.0 and got["worse_share"] == 0.0


def test_a_clearly_better_model_has_its_whole_interval_below_one() -> None:
    base, y = _window(2)
    better = base + 1.0 * y  # every fraud pushed up, some still below legitimate rows
    got = _metrics.fp_ratio_interval(better, base, y, seed=0, draws=300)
    assert got["high"] < 1.0 and got["worse_share"] == 0.0
    worse = _metrics.fp_ratio_interval(base, better, y, seed=0, draws=300)
    assert worse["low"] > 1.0 and worse["worse_share"] == 1.0


def test_deterministic_for_a_seed_and_paired() -> None:
    a, y = _window(3)
    b = a + np.random.default_rng(9).normal(scale=0.5, size=len(a))
    one = _metrics.fp_ratio_interval(a, b, y, seed=[0, 2], draws=200)
    assert one == _metrics.fp_ratio_interval(a, b, y, seed=[0, 2], draws=200)
    assert one != _metrics.fp_ratio_interval(a, b, y, seed=[1, 2], draws=200)
    assert one["low"] <= one["high"] and one["draws"] == 200 and one["coverage"] == 0.9


def test_a_baseline_with_no_false_positive_gives_no_interval() -> None:
    _, y = _window(4)
    perfect = y.astype(float)  # every fraud above every legitimate row
    got = _metrics.fp_ratio_interval(perfect, perfect, y, seed=0, draws=100)
    assert got["undefined"] == 100 and got["low"] is None and got["high"] is None
    assert got["worse_share"] is None
