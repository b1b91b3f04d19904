"""The leakage screen's one-sort average precision equals the reference (stable argsort)
computation both ways, ties included: the screen's recorded figures do not move."""

from __future__ import annotations

import numpy as np
import pytest

from ledgerml.mlops._metrics import average_precision, average_precision_both_ways


@pytest.mark.parametrize("kind", ["continuous", "few values", "rounded"])
def test_both_ways_equals_two_stable_sorts(kind: str) -> None:
    rng = np.random.default_rng({"continuous": 1, "few values": 2, "rounded": 3}[kind])
    for _ in range(60):
        n = int(rng.integers(2, 4000))
        if kind == "continuous":
            s = rng.normal(size=n)
        elif kind == "few values":
            s = rng.integers(0, 4, n).astype(float)  # heavy ties: the stable order decides
        else:
            s = np.round(rng.normal(size=n), 1)
        y = (rng.uniform(size=n) < rng.uniform(0.005, 0.6)).astype(float)
        up, down = average_precision_both_ways(s, y)
        assert up == pytest.approx(average_precision(s, y), abs=1e-12)
        assert down == pytest.approx(average_precision(-s, y), abs=1e-12)


def test_edge_cases() -> None:
    assert average_precision_both_ways([0.3, 0.1], [0, 0]) == (0.0, 0.0)
    up, down = average_precision_both_ways([0.9, 0.1, 0.5], [1, 0, 0])
    assert up == 1.0 and down == pytest.approx(1 / 3)
    # all tied: row order decides, both ways alike
    up, down = average_precision_both_ways([1.0] * 4, [0, 1, 0, 1])
    assert up == down == pytest.approx(average_precision([1.0] * 4, [0, 1, 0, 1]))
