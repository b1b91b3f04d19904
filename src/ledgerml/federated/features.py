"""Features a bank can compute from its own view of the transactions.

A bank's view is every transaction that touches one of its accounts (as sender or
receiver). Account statistics are computed inside the view, so a foreign
counterparty is seen only through its dealings with this bank's customers — which is
exactly why a laundering chain that crosses banks looks fragmentary to each of them.
The centralized reference uses the same function on the whole table (`bank=None`).

    view = bank_view(table, "B2")                      # rows touching B2's accounts
    x, y = featurize(view, bank="B2")                  # float32 matrix, 0/1 labels

Features are computed per time slice (train slice, test slice) from that slice only:
batch monitoring of a period, with no information flowing from test to train.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_DAY = 86_400.0
VELOCITY_WINDOW = 3 * _DAY

#: Feature names, in matrix column order (every model and bank uses the same order).
FEATURES: tuple[str, ...] = (
    "log_amount",
    "round_amount",
    "hour",
    "cross_bank",
    "own_src",
    "own_dst",
    "pair_count",
    "reverse_pair",
    "src_out_count",
    "src_in_count",
    "src_out_degree",
    "src_in_degree",
    "src_passthrough",
    "src_velocity",
    "src_amount_vs_median",
    "src_hours_since_in",
    "src_amount_vs_last_in",
    "dst_out_count",
    "dst_in_count",
    "dst_out_degree",
    "dst_in_degree",
    "dst_passthrough",
    "dst_velocity",
    "dst_amount_vs_median",
    "dst_hours_to_next_out",
    "dst_amount_vs_next_out",
)


def bank_view(table: pd.DataFrame, bank: str | None) -> pd.DataFrame:
    """The rows a bank may see: those touching its accounts (all rows for None)."""
    if bank is None:
        return table
    mask = (table["src_bank"] == bank) | (table["dst_bank"] == bank)
    return table[mask].reset_index(drop=True)


def _seconds(ts: pd.Series) -> np.ndarray:
    return (ts - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()


def _window_counts(
    acc: np.ndarray, t: np.ndarray, q_acc: np.ndarray, q_t: np.ndarray
) -> np.ndarray:
    """How many events of the same account fall within ±VELOCITY_WINDOW of each query."""
    span = float(max(t.max() - t.min(), 1.0)) + 4 * VELOCITY_WINDOW
    base = t.min() - 2 * VELOCITY_WINDOW
    key = acc.astype(np.float64) * span + (t - base)
    key.sort()
    qk = q_acc.astype(np.float64) * span + (q_t - base)
    return (
        np.searchsorted(key, qk + VELOCITY_WINDOW, side="right")
        - np.searchsorted(key, qk - VELOCITY_WINDOW, side="left")
    ).astype(np.float32)


def featurize(view: pd.DataFrame, bank: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(features, labels) of every row of `view`, from `view` alone."""
    n = len(view)
    if n == 0:
        return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int8)
    t = _seconds(view["timestamp"])
    amount = view["amount"].to_numpy(np.float64)
    codes, uniq = pd.factorize(pd.concat([view["src_account"], view["dst_account"]]))
    s = codes[:n]
    d = codes[n:]
    m = len(uniq)
    f: dict[str, np.ndarray] = {}
    f["log_amount"] = np.log1p(amount)
    f["round_amount"] = (np.abs(amount - np.round(amount, -1)) < 1e-6).astype(np.float32)
    f["hour"] = ((t % _DAY) / 3600.0).astype(np.float32)
    f["cross_bank"] = (view["src_bank"].to_numpy() != view["dst_bank"].to_numpy()).astype(
        np.float32
    )
    if bank is None:
        f["own_src"] = np.ones(n, np.float32)
        f["own_dst"] = np.ones(n, np.float32)
    else:
        f["own_src"] = (view["src_bank"].to_numpy() == bank).astype(np.float32)
        f["own_dst"] = (view["dst_bank"].to_numpy() == bank).astype(np.float32)
    pair = s.astype(np.int64) * m + d
    rev = d.astype(np.int64) * m + s
    pair_codes, pair_counts = np.unique(pair, return_counts=True)
    f["pair_count"] = pair_counts[np.searchsorted(pair_codes, pair)].astype(np.float32)
    f["reverse_pair"] = np.isin(rev, pair_codes).astype(np.float32)
    out_count = np.bincount(s, minlength=m).astype(np.float32)
    in_count = np.bincount(d, minlength=m).astype(np.float32)
    out_sum = np.bincount(s, weights=amount, minlength=m)
    in_sum = np.bincount(d, weights=amount, minlength=m)
    out_deg = np.bincount(pair_codes // m, minlength=m).astype(np.float32)
    in_deg = np.bincount(pair_codes % m, minlength=m).astype(np.float32)
    passthrough = np.minimum(in_sum, out_sum) / np.maximum(np.maximum(in_sum, out_sum), 1e-9)
    acc_all = np.concatenate([s, d])
    t_all = np.concatenate([t, t])
    amt_all = np.concatenate([amount, amount])
    med = pd.Series(amt_all).groupby(acc_all).median().reindex(range(m)).to_numpy()
    for side, a in (("src", s), ("dst", d)):
        f[f"{side}_out_count"] = out_count[a]
        f[f"{side}_in_count"] = in_count[a]
        f[f"{side}_out_degree"] = out_deg[a]
        f[f"{side}_in_degree"] = in_deg[a]
        f[f"{side}_passthrough"] = passthrough[a].astype(np.float32)
        f[f"{side}_velocity"] = _window_counts(acc_all, t_all, a, t)
        f[f"{side}_amount_vs_median"] = (amount / np.maximum(med[a], 1e-9)).astype(np.float32)
    # hop timing: money that arrived shortly before it leaves (sender side) ...
    inc = pd.DataFrame({"acc": d, "t": t, "amt": amount}).sort_values("t", kind="stable")
    q = pd.DataFrame({"acc": s, "t": t, "i": np.arange(n)}).sort_values("t", kind="stable")
    back = pd.merge_asof(
        q,
        inc.rename(columns={"t": "t_in"}).assign(t=inc["t"]),
        on="t",
        by="acc",
        direction="backward",
        allow_exact_matches=False,
    ).sort_values("i")
    hours = (back["t"].to_numpy() - back["t_in"].to_numpy()) / 3600.0
    f["src_hours_since_in"] = hours.astype(np.float32)
    f["src_amount_vs_last_in"] = (amount / back["amt"].to_numpy()).astype(np.float32)
    # ... and money that leaves shortly after it arrived (receiver side)
    outg = pd.DataFrame({"acc": s, "t": t, "amt": amount}).sort_values("t", kind="stable")
    q = pd.DataFrame({"acc": d, "t": t, "i": np.arange(n)}).sort_values("t", kind="stable")
    fwd = pd.merge_asof(
        q,
        outg.rename(columns={"t": "t_out"}).assign(t=outg["t"]),
        on="t",
        by="acc",
        direction="forward",
        allow_exact_matches=False,
    ).sort_values("i")
    hours = (fwd["t_out"].to_numpy() - fwd["t"].to_numpy()) / 3600.0
    f["dst_hours_to_next_out"] = hours.astype(np.float32)
    f["dst_amount_vs_next_out"] = (fwd["amt"].to_numpy() / amount).astype(np.float32)
    x = np.column_stack([np.asarray(f[name], dtype=np.float32) for name in FEATURES])
    return x, view["label"].to_numpy(np.int8)
