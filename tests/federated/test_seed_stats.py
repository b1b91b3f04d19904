"""The statistics behind `ledgerml bench fl --seeds K`: 95% t-intervals over seeds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ledgerml.federated.evaluation import seed_summary, t_interval
from tests.conftest import run_cli


def test_t_interval_matches_a_hand_computed_one() -> None:
    # mean 0.5, sample sd 0.1 (values 0.4, 0.5, 0.6), t(0.975, 2) = 4.3027
    iv = t_interval([0.4, 0.5, 0.6])
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert iv.n == 3
    assert iv.mean == pytest.approx(0.5)
    assert (iv.low, iv.high) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    same = t_interval([0.7, 0.7])
    assert same.low == same.high == pytest.approx(0.7)


def test_t_quantiles_agree_with_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for n in range(2, 16):  # the table (df <= 10) and scipy beyond
        values = [float(i % 3) for i in range(n)]
        iv = t_interval(values)
        sd = float(stats.tstd(values))
        expected = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert iv.high - iv.mean == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("values", [[], [0.5], [0.1, float("nan")]])
def test_t_interval_refuses_what_has_no_interval(values: list[float]) -> None:
    with pytest.raises(ValueError, match="values"):
        t_interval(values)


def test_seed_summary_pairs_differences_by_seed() -> None:
    # federated beats centralized by exactly 0.1 on every seed, though both vary a lot:
    # the paired difference has zero width, the rows do not
    runs = [
        {
            "federated": {"auprc": a + 0.1, "recall_at_1pct_fpr": 0.6},
            "centralized": {"auprc": a, "recall_at_1pct_fpr": 0.5 + a},
        }
        for a in (0.2, 0.5, 0.3)
    ]
    out = seed_summary(runs)
    assert set(out["rows"]) == {"federated", "centralized"}  # absent rows are left out
    assert out["rows"]["federated"]["auprc"].high - out["rows"]["federated"]["auprc"].low > 0.5
    diff = out["differences"]["federated - centralized"]["auprc"]
    assert diff.mean == pytest.approx(0.1)
    assert diff.high - diff.low == pytest.approx(0.0, abs=1e-12)
    assert out["differences"]["federated - centralized"]["recall_at_1pct_fpr"].mean == (
        pytest.approx(0.6 - (0.5 + 1.0 / 3))
    )
    with pytest.raises(ValueError, match="federated"):
        seed_summary([{"centralized": {"auprc": 0.1}}, {"centralized": {"auprc": 0.2}}])


def test_bench_seeds_refuses_one_seed_and_other_benchmarks(tmp_path: Path) -> None:
    for args, says in (
        (("fl", "--seeds", "1"), "at least 2"),
        (("store", "--seeds", "3"), "has no seeds"),
    ):
        res = run_cli(tmp_path / "p", "bench", *args, "-o", str(tmp_path / "out"))
        assert res.returncode == 2 and "--seeds" in res.stderr and says in res.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
