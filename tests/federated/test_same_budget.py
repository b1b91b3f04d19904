"""The centralized reference with the federated model's tree budget (issue 15)."""

from __future__ import annotations

import numpy as np

from ledgerml.federated._xgb import XgbParams
from ledgerml.federated.runner import _fit_bagged, _fit_pooled, _tree_count
from ledgerml.federated.spec import RunSpec


def test_bagged_reference_has_the_federated_tree_count() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 3)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.5, size=600) > 1.5).astype(np.int8)
    spec = RunSpec(
        run_id="r", home=".", workdir=".", banks=("A", "B", "C"), rounds=2, num_feature=3,
        xgb=XgbParams(local_rounds=2),
    )  # fmt: skip
    bagged = _fit_bagged(spec, x, y, shards=3)
    # a federated round adds local_rounds trees per bank: rounds x banks x local_rounds
    assert _tree_count(spec, bagged) == 2 * 3 * 2
    solo = RunSpec(
        run_id="r", home=".", workdir=".", banks=("A",), rounds=2, num_feature=3,
        xgb=XgbParams(local_rounds=4),
    )  # fmt: skip
    assert _tree_count(solo, _fit_pooled(solo, x, y)) == 4
    assert _fit_bagged(spec, x, y, shards=3) == bagged  # seeded: the same bytes again
