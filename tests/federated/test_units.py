"""Fast checks of the parts: generator, features, tree aggregation, trust, signatures."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ledgerml.crypto.signers import Ed25519Signer
from ledgerml.datasets.aml import REQUIRED_COLUMNS, TYPOLOGIES, generate, summary
from ledgerml.errors import InputError
from ledgerml.federated import _linear, _xgb
from ledgerml.federated.features import FEATURES, bank_view, featurize
from ledgerml.federated.signing import sign_update, verify_update
from ledgerml.federated.trust import TrustState, agreement_scores, distance_scores
from ledgerml.mlops._metrics import average_precision


@pytest.fixture(scope="module")
def table():
    return generate(banks=5, accounts=2000, days=60, seed=3)


def test_generator_is_seeded_and_has_the_schema(table) -> None:
    again = generate(banks=5, accounts=2000, days=60, seed=3)
    assert table.equals(again)
    assert not table.equals(generate(banks=5, accounts=2000, days=60, seed=4))
    assert list(table.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert table["tx_id"].is_unique
    assert (table["amount"] > 0).all()


def test_laundering_crosses_banks_with_every_typology(table) -> None:
    s = summary(table)
    assert 0 < s["laundering_share"] < 0.01  # rare, as in real AML data
    assert s["cross_bank_share_laundering"] > 0.5
    assert set(summary(generate(seed=3))["typologies"]) == set(TYPOLOGIES)  # the default size
    # no bank sees every laundering transaction: each view holds only fragments
    lab = table[table["label"] == 1]
    for bank in sorted(set(table["src_bank"])):
        seen = bank_view(lab, bank)
        assert 0 < len(seen) < len(lab)


def test_simple_features_do_not_give_labels_away(table) -> None:
    y = table["label"].to_numpy()
    amount = table["amount"].to_numpy()
    best_amount = max(average_precision(amount, y), average_precision(-amount, y))
    assert best_amount < 5 * y.mean()  # amount alone is near the base rate
    x, yy = featurize(table, None)
    assert x.shape == (len(table), len(FEATURES))
    for j in range(x.shape[1]):
        col = np.nan_to_num(x[:, j], nan=-1e12)
        assert max(average_precision(col, yy), average_precision(-col, yy)) < 0.2, FEATURES[j]


def test_a_bank_view_sees_foreign_accounts_only_partly(table) -> None:
    view = bank_view(table, "B1")
    x, _ = featurize(view, "B1")
    full, _ = featurize(table, None)
    foreign_dst = (view["dst_bank"] != "B1").to_numpy()
    col = FEATURES.index("dst_in_count")
    # a foreign receiver's incoming count is what B1's customers sent it, no more
    rows = np.flatnonzero(table["tx_id"].isin(view["tx_id"][foreign_dst]).to_numpy())
    assert x[foreign_dst, col].sum() < full[rows, col].sum()


def _data(seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 1.2).astype(np.int8)
    return x, y


def test_weighted_tree_aggregate_is_the_weighted_sum_of_margins() -> None:
    x, y = _data()
    params = _xgb.XgbParams(local_rounds=3, max_depth=3)
    base = _xgb.empty_model(params, 4)
    u1 = _xgb.train_increment(base, x[:300], y[:300], params, 1)
    u2 = _xgb.train_increment(base, x[300:], y[300:], params, 1)
    agg = _xgb.aggregate(base, [(u1, 0.25), (u2, 0.75)])
    bias = _xgb.predict_margin(base, x)
    want = (
        bias
        + 0.25 * (_xgb.predict_margin(u1, x) - bias)
        + 0.75 * (_xgb.predict_margin(u2, x) - bias)
    )
    np.testing.assert_allclose(_xgb.predict_margin(agg, x), want, rtol=1e-4, atol=1e-4)
    # deterministic bytes (the CID an auditor recomputes) and weight-sensitive
    assert agg == _xgb.aggregate(base, [(u1, 0.25), (u2, 0.75)])
    assert agg != _xgb.aggregate(base, [(u1, 0.26), (u2, 0.74)])
    scaled = _xgb.scale_model(u1, 10.0)
    np.testing.assert_allclose(
        _xgb.predict_margin(scaled, x) - bias,
        10 * (_xgb.predict_margin(u1, x) - bias),
        rtol=1e-3,
        atol=1e-3,
    )


def test_linear_fedavg_learns() -> None:
    x, y = _data()
    model = _linear.empty_model(4)
    for _ in range(5):
        model = _linear.aggregate(
            model, [(_linear.train_increment(model, x, y, _linear.LinearParams()), 1.0)]
        )
    assert average_precision(_linear.predict_margin(model, x), y) > 0.6


def test_agreement_scores_single_out_the_update_that_hurts() -> None:
    # evaluator -> candidate -> contribution; B3 hurts everyone else, and praises itself
    imp = {
        "B1": {"B1": 0.02, "B2": 0.01, "B3": -0.30, "B4": 0.015},
        "B2": {"B1": 0.01, "B2": 0.03, "B3": -0.25, "B4": 0.02},
        "B3": {"B1": -0.5, "B2": -0.5, "B3": 0.90, "B4": -0.5},
        "B4": {"B1": 0.02, "B2": 0.01, "B3": -0.40, "B4": 0.01},
    }
    scores = agreement_scores(imp)
    assert scores["B3"] == 0.0
    assert min(scores[b] for b in ("B1", "B2", "B4")) > 0.5
    state = TrustState.start(["B1", "B2", "B3", "B4"]).update(scores)
    assert state.trust["B3"] < min(state.trust[b] for b in ("B1", "B2", "B4"))
    weights = state.weights(scores, {"B1": 100, "B2": 100, "B3": 100, "B4": 50})
    assert weights["B3"] == 0.0
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["B1"] > weights["B4"]  # samples count too


def test_distance_scores_flag_an_outlying_vector() -> None:
    rng = np.random.default_rng(0)
    ups = {f"B{i}": rng.normal(0, 0.1, 10) for i in range(1, 5)}
    ups["B5"] = rng.normal(0, 0.1, 10) * 50
    s = distance_scores(ups)
    assert s["B5"] < 0.1 < min(s[b] for b in ("B1", "B2", "B3", "B4"))


def test_update_signatures_bind_key_and_fields() -> None:
    key, other = Ed25519Signer.generate(), Ed25519Signer.generate()
    pub = key.verifier().public_bytes().hex()
    digest = hashlib.sha256(b"update").hexdigest()
    sig = sign_update(key, "run", 2, "B1", digest, 100)
    assert verify_update(pub, "run", 2, "B1", digest, 100, sig)
    assert not verify_update(pub, "run", 2, "B1", digest, 101, sig)  # samples are signed
    assert not verify_update(pub, "run", 3, "B1", digest, 100, sig)  # so is the round
    forged = sign_update(other, "run", 2, "B1", digest, 100)
    assert not verify_update(pub, "run", 2, "B1", digest, 100, forged)


def test_generator_refuses_nonsense() -> None:
    with pytest.raises(InputError) as err:
        generate(banks=0)
    assert err.value.field == "banks"
