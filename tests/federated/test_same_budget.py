"""The centralized reference with the federated model's tree budget (issue 15)."""

from __future__ import annotations

import numpy as np

from ledgerml.federated._xgb import XgbParams
from ledgerml.federated.evaluation import sender_scores, transaction_scores
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


def test_sender_scores_take_the_senders_view_not_the_higher() -> None:
    # tx 0: A -> B (both views), tx 1: B -> B (B only), tx 2: B -> A (both views)
    positions = {"A": np.array([0, 2]), "B": np.array([0, 1, 2])}
    scores = {"A": np.array([0.9, 0.1]), "B": np.array([0.2, 0.5, 0.7])}
    sends = {"A": np.array([True, False]), "B": np.array([False, True, True])}
    assert sender_scores(3, positions, scores, sends).tolist() == [0.9, 0.5, 0.7]
    assert transaction_scores(3, positions, scores).tolist() == [0.9, 0.5, 0.7]
    scores["A"] = np.array([0.1, 0.8])  # A now scores tx 2 higher than its sender B
    assert sender_scores(3, positions, scores, sends).tolist() == [0.1, 0.5, 0.7]
    assert transaction_scores(3, positions, scores).tolist() == [0.2, 0.5, 0.8]
