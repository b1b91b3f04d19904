"""Multi-bank transactions with AMLSim-style laundering typologies, and the
"bring your own data" table schema.

No real anti-money-laundering data set can be had offline, so federated AML is
measured on a seeded simulation. It is built so that no simple feature gives
the labels away: laundering amounts are drawn from the same ranges as ordinary
payments, mule accounts also carry ordinary activity, and every typology's
accounts are spread over several banks, so a bank sees only fragments of a
chain.

    from ledgerml.datasets.aml import generate, load_transactions
    table = generate(banks=5, accounts=10000, days=120, seed=7)   # pandas DataFrame
    table = load_transactions("my-transactions.parquet")         # validated, same columns

Columns (the documented schema of `--data`, see docs/federated.md):

| column | type | meaning |
|---|---|---|
| `tx_id` | string | unique transaction identifier |
| `timestamp` | datetime or ISO 8601 or epoch seconds | when it was booked |
| `src_account`, `dst_account` | string | sending / receiving account |
| `src_bank`, `dst_bank` | string | bank holding that account |
| `amount` | number > 0 | transferred amount |
| `label` | 0/1 | 1 = part of a laundering scheme |
| `typology` | string, optional | which scheme (generator output only) |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ledgerml.errors import InputError
from ledgerml.tables import read_parquet

#: Columns every transaction table must have (`--data`).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "tx_id",
    "timestamp",
    "src_account",
    "src_bank",
    "dst_account",
    "dst_bank",
    "amount",
    "label",
)
TYPOLOGIES: tuple[str, ...] = (
    "fan_out",
    "fan_in",
    "cycle",
    "scatter_gather",
    "gather_scatter",
    "bipartite",
    "stack",
)
_EPOCH = pd.Timestamp("2026-01-01", tz="UTC")
_DAY = 86_400.0
#: organised groups behind the laundering schemes
GROUPS = 8


@dataclass(frozen=True)
class AmlConfig:
    """Generator parameters; the defaults are the documented benchmark set."""

    banks: int = 5
    accounts: int = 10000
    days: int = 120
    seed: int = 7
    #: laundering schemes started per 1,000 accounts per 30 days
    schemes_per_k_month: float = 2.0


def bank_names(n: int) -> list[str]:
    """B1…Bn: the bank identifiers the generator (and the CLI's --poison) use."""
    return [f"B{i + 1}" for i in range(n)]


def _amounts(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """Amounts of ordinary payments of a kind (lognormal, some rounded like people do)."""
    mu, sigma = {
        "merchant": (3.6, 0.9),
        "peer": (4.6, 1.0),
        "salary": (8.0, 0.35),
        "invoice": (7.6, 1.1),
        "rent": (6.9, 0.3),
    }[kind]
    amt = rng.lognormal(mu, sigma, n)
    rounded = rng.random(n) < (0.5 if kind in ("peer", "rent") else 0.1)
    amt = np.where(rounded, np.maximum(np.round(amt, -1), 10.0), np.round(amt, 2))
    return amt


def generate(
    banks: int = 5,
    accounts: int = 10000,
    days: int = 120,
    seed: int = 7,
    schemes_per_k_month: float = 2.0,
) -> pd.DataFrame:
    """A transaction table over `banks` banks (see the module docstring for columns).

    Ordinary activity: salaries (businesses → employees, monthly), card-like merchant
    payments, rent, peer transfers among a small circle of contacts, business invoices.
    Laundering: the seven AMLSim typologies, each over 3–12 accounts chosen across banks
    (ordinary customers recruited as mules, so they keep their ordinary activity), with
    amounts drawn from ordinary payment ranges and a few days between hops.
    """
    if banks < 1:
        raise InputError("must be at least 1", field="banks")
    if accounts < 20 * banks:
        raise InputError(f"must be at least {20 * banks} for {banks} banks", field="accounts")
    if days < 7:
        raise InputError("must be at least 7", field="days")
    rng = np.random.default_rng(seed)
    names = bank_names(banks)
    # bank market shares differ (a few large banks, several small ones)
    share = 0.7 ** np.arange(banks)
    share /= share.sum()
    acct_bank = rng.choice(banks, size=accounts, p=share)
    is_business = rng.random(accounts) < 0.12
    activity = rng.lognormal(0.0, 0.6, accounts)  # how busy each customer is
    biz = np.flatnonzero(is_business)
    ind = np.flatnonzero(~is_business)
    # local bias: customers bank, shop and have contacts mostly near their own bank's
    # customers, but payments cross banks all the time
    rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]] = []

    def add(src: np.ndarray, dst: np.ndarray, t: np.ndarray, amt: np.ndarray, typ: str) -> None:
        keep = src != dst
        rows.append((src[keep], dst[keep], t[keep], amt[keep], typ))

    horizon = days * _DAY
    # salaries: each individual has an employer, paid monthly around the same day
    employer = rng.choice(biz, size=len(ind))
    pay_day = rng.integers(0, 28, size=len(ind))
    salary = _amounts(rng, len(ind), "salary")
    for month in range(days // 30 + 1):
        t = (month * 30 + pay_day) * _DAY + rng.normal(10 * 3600, 1800, len(ind))
        ok = (t >= 0) & (t < horizon) & (rng.random(len(ind)) < 0.93)
        amt = salary * rng.normal(1.0, 0.03, len(ind))
        add(employer[ok], ind[ok], t[ok], np.round(amt[ok], 2), "salary")
    # rent: a fifth of individuals pay a landlord (another individual) monthly
    renters = ind[rng.random(len(ind)) < 0.2]
    landlord = rng.choice(ind, size=len(renters))
    rent = _amounts(rng, len(renters), "rent")
    for month in range(days // 30 + 1):
        t = (month * 30 + rng.integers(0, 4, len(renters))) * _DAY + rng.uniform(
            0, _DAY, len(renters)
        )
        ok = (t >= 0) & (t < horizon)
        add(renters[ok], landlord[ok], t[ok], rent[ok], "rent")
    # merchant payments: Poisson per individual, to a few favourite businesses
    n_merchant = rng.poisson(activity[ind] * days * 0.15)
    src = np.repeat(ind, n_merchant)
    fav = rng.choice(biz, size=(len(ind), 4))
    pick = rng.integers(0, 4, size=len(src))
    dst = fav[np.repeat(np.arange(len(ind)), n_merchant), pick]
    # sometimes a random shop instead of a favourite
    other = rng.random(len(src)) < 0.3
    dst = np.where(other, rng.choice(biz, size=len(src)), dst)
    add(
        src, dst, rng.uniform(0, horizon, len(src)), _amounts(rng, len(src), "merchant"), "merchant"
    )
    # peer transfers within a small circle of contacts
    contacts = rng.choice(accounts, size=(accounts, 6))
    n_peer = rng.poisson(activity * days * 0.05)
    src = np.repeat(np.arange(accounts), n_peer)
    dst = contacts[src, rng.integers(0, 6, size=len(src))]
    add(src, dst, rng.uniform(0, horizon, len(src)), _amounts(rng, len(src), "peer"), "peer")
    # business invoices
    partners = rng.choice(biz, size=(len(biz), 5))
    n_inv = rng.poisson(activity[biz] * days * 0.12)
    src = np.repeat(biz, n_inv)
    dst = partners[np.repeat(np.arange(len(biz)), n_inv), rng.integers(0, 5, size=len(src))]
    add(src, dst, rng.uniform(0, horizon, len(src)), _amounts(rng, len(src), "invoice"), "invoice")

    normal = _concat(rows)
    normal["label"] = 0
    laundering = _laundering(
        rng, accounts, acct_bank, banks, horizon, schemes_per_k_month * accounts / 1000 * days / 30
    )
    table = pd.concat([normal, laundering], ignore_index=True)
    table = table.sort_values("t", kind="stable").reset_index(drop=True)
    table["tx_id"] = [f"T{i:07d}" for i in range(len(table))]
    table["timestamp"] = _EPOCH + pd.to_timedelta(table["t"], unit="s")
    src = table["src"].to_numpy()
    dst = table["dst"].to_numpy()
    table["src_account"] = [f"A{a:06d}" for a in src]
    table["dst_account"] = [f"A{a:06d}" for a in dst]
    bank_arr = np.asarray(names)
    table["src_bank"] = bank_arr[acct_bank[src]]
    table["dst_bank"] = bank_arr[acct_bank[dst]]
    cols = [*REQUIRED_COLUMNS, "typology"]
    return table[cols].astype({"label": "int8"})


def _concat(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "src": np.concatenate([r[0] for r in rows]).astype(np.int64),
            "dst": np.concatenate([r[1] for r in rows]).astype(np.int64),
            "t": np.concatenate([r[2] for r in rows]),
            "amount": np.concatenate([r[3] for r in rows]),
            "typology": np.concatenate([np.full(len(r[0]), r[4], dtype=object) for r in rows]),
        }
    )


def _mules(
    rng: np.random.Generator, k: int, acct_bank: np.ndarray, affinity: np.ndarray
) -> np.ndarray:
    """k distinct accounts recruited where a crime group has its mules (bank `affinity`),
    always over at least two banks: launderers deliberately cross banks."""
    banks = len(affinity)
    chosen: list[int] = []
    while len(chosen) < k:
        b = int(rng.choice(banks, p=affinity))
        if len(chosen) == k - 1 and banks > 1:
            used = set(acct_bank[chosen].tolist())
            if used == {b}:  # force a second bank into the chain
                b = int(rng.choice([x for x in range(banks) if x != b]))
        pool = np.flatnonzero(acct_bank == b)
        if len(pool) == 0:
            continue
        a = int(rng.choice(pool))
        if a not in chosen:
            chosen.append(a)
    return rng.permutation(np.asarray(chosen, dtype=np.int64))


def _laundering(
    rng: np.random.Generator,
    accounts: int,
    acct_bank: np.ndarray,
    banks: int,
    horizon: float,
    expected_schemes: float,
) -> pd.DataFrame:
    """The laundering transactions of AMLSim's typologies, all labelled 1."""
    src_l: list[int] = []
    dst_l: list[int] = []
    t_l: list[float] = []
    amt_l: list[float] = []
    typ_l: list[str] = []
    n_schemes = int(rng.poisson(expected_schemes))
    # organised groups: each favours two typologies and recruits mules at its own banks
    groups = [
        (
            rng.choice(len(TYPOLOGIES), size=2, replace=False),
            rng.dirichlet(np.full(banks, 0.6)),
        )
        for _ in range(GROUPS)
    ]

    def hop(s: int, d: int, t: float, amount: float, typ: str) -> None:
        src_l.append(s)
        dst_l.append(d)
        t_l.append(t)
        # launderers skim or split, and avoid obvious identical amounts
        amt_l.append(round(float(amount) * float(rng.uniform(0.9, 1.0)), 2))
        typ_l.append(typ)

    def gap() -> float:
        return float(rng.uniform(0.3, 4.0)) * _DAY

    for _ in range(n_schemes):
        favoured, affinity = groups[int(rng.integers(0, GROUPS))]
        typ = (
            TYPOLOGIES[int(rng.choice(favoured))]
            if rng.random() < 0.8
            else str(rng.choice(TYPOLOGIES))
        )
        t0 = float(rng.uniform(0, horizon - 5 * _DAY))
        # amounts in the range of peer transfers and invoices, not conspicuous ones
        base = float(rng.lognormal(6.6, 0.9))
        if typ == "fan_out":
            acc = _mules(rng, int(rng.integers(4, 10)), acct_bank, affinity)
            for d in acc[1:]:
                hop(acc[0], d, t0 + gap(), base, typ)
        elif typ == "fan_in":
            acc = _mules(rng, int(rng.integers(4, 10)), acct_bank, affinity)
            for s in acc[1:]:
                hop(s, acc[0], t0 + gap(), base, typ)
        elif typ == "cycle":
            acc = _mules(rng, int(rng.integers(3, 7)), acct_bank, affinity)
            t = t0
            for i in range(len(acc)):
                t += gap()
                hop(acc[i], acc[(i + 1) % len(acc)], t, base * (1 - 0.02 * i), typ)
        elif typ == "scatter_gather":
            acc = _mules(rng, int(rng.integers(5, 10)), acct_bank, affinity)
            s, d, mids = acc[0], acc[1], acc[2:]
            for m in mids:
                t = t0 + gap()
                hop(s, m, t, base, typ)
                hop(m, d, t + gap(), base, typ)
        elif typ == "gather_scatter":
            acc = _mules(rng, int(rng.integers(6, 11)), acct_bank, affinity)
            hub = acc[0]
            k = (len(acc) - 1) // 2
            t_mid = t0 + 5 * _DAY
            for s in acc[1 : 1 + k]:
                hop(s, hub, t0 + gap(), base, typ)
            for d in acc[1 + k :]:
                hop(hub, d, t_mid + gap(), base * k / max(len(acc) - 1 - k, 1), typ)
        elif typ == "bipartite":
            acc = _mules(rng, int(rng.integers(5, 10)), acct_bank, affinity)
            k = len(acc) // 2
            for s in acc[:k]:
                for d in acc[k:]:
                    if rng.random() < 0.7:
                        hop(s, d, t0 + gap() * 2, base / 2, typ)
        else:  # stack: two bipartite layers
            acc = _mules(rng, int(rng.integers(6, 13)), acct_bank, affinity)
            a, b, c = np.array_split(acc, 3)
            for s in a:
                for d in b:
                    if rng.random() < 0.7:
                        hop(s, d, t0 + gap(), base / 2, typ)
            for s in b:
                for d in c:
                    if rng.random() < 0.7:
                        hop(s, d, t0 + 4 * _DAY + gap(), base / 2, typ)
    out = pd.DataFrame(
        {
            "src": np.asarray(src_l, dtype=np.int64),
            "dst": np.asarray(dst_l, dtype=np.int64),
            "t": np.asarray(t_l, dtype=np.float64),
            "amount": np.asarray(amt_l, dtype=np.float64),
            "typology": np.asarray(typ_l, dtype=object),
        }
    )
    out = out[(out["src"] != out["dst"]) & (out["t"] < horizon)]
    out["label"] = 1
    return out


#: File endings read as CSV (compressed ones decompressed by pandas) and as Parquet.
CSV_ENDINGS = (".csv", ".txt", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz", ".tsv")
PARQUET_ENDINGS = (".parquet", ".pq")


def parse_column_map(text: str | None, *, field: str = "--map") -> dict[str, str]:
    """`src_account=from_acct,dst_account=to_acct` -> {"from_acct": "src_account", ...}:
    the table's own column names mapped onto the schema's (REQUIRED_COLUMNS, typology)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        ours, eq, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not eq or not ours or not theirs:
            raise InputError("expected schema_column=table_column, comma-separated", field=field)
        if ours not in (*REQUIRED_COLUMNS, "typology"):
            raise InputError(
                f"{ours!r} is not a schema column ({', '.join(REQUIRED_COLUMNS)}, typology)",
                field=field,
            )
        if ours in out.values() or theirs in out:
            raise InputError(f"{ours!r} or {theirs!r} mapped twice", field=field)
        out[theirs] = ours
    return out


def load_transactions(
    path: str | Path, *, field: str = "--data", columns: dict[str, str] | None = None
) -> pd.DataFrame:
    """Read a CSV (also .csv.gz) or Parquet transaction table and check it fits the schema;
    `columns` renames the table's columns onto the schema's first (see `parse_column_map`).

    Raises `InputError` naming the problem (missing column, bad label, …) before anything
    is written anywhere. Timestamps may be datetimes, ISO 8601 strings or epoch seconds.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {p}", field=field)
    renames = dict(columns or {})
    theirs = {ours: t for t, ours in renames.items()}
    as_text = {theirs.get(c, c): str for c in (*REQUIRED_COLUMNS[2:6], "tx_id")}
    name = p.name.lower()
    try:
        if name.endswith(PARQUET_ENDINGS):
            table = read_parquet(p).to_pandas()
        elif name.endswith(CSV_ENDINGS) or name.endswith("csv"):
            table = pd.read_csv(p, dtype=as_text, sep="\t" if name.endswith(".tsv") else ",")
        else:
            raise InputError(f"{p.name}: expected a .csv, .csv.gz or .parquet file", field=field)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many kinds; name the file either way
        raise InputError(f"cannot read {p.name} ({type(exc).__name__})", field=field) from None
    if renames:
        absent = [t for t in renames if t not in table.columns]
        if absent:
            raise InputError(f"no column(s) {', '.join(absent)} in {p.name}", field="--map")
        clash = [o for o in renames.values() if o in table.columns and o not in renames]
        if clash:
            raise InputError(
                f"the table already has column(s) {', '.join(clash)}: map those too or drop them",
                field="--map",
            )
        table = table.rename(columns=renames)
    return validate_transactions(table, field=field)


def validate_transactions(table: pd.DataFrame, *, field: str = "--data") -> pd.DataFrame:
    """The table with normalised types, or `InputError` naming the offending column."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(missing)} "
            f"(required: {', '.join(REQUIRED_COLUMNS)})",
            field=field,
        )
    out = table.copy()
    if len(out) == 0:
        raise InputError("the table has no rows", field=field)
    for col in ("tx_id", "src_account", "src_bank", "dst_account", "dst_bank"):
        if out[col].isna().any():
            raise InputError(f"column {col} has empty values", field=field)
        out[col] = out[col].astype(str)
    if out["tx_id"].duplicated().any():
        raise InputError("column tx_id has duplicate values", field=field)
    out["timestamp"] = _timestamps(out["timestamp"], field)
    amount = pd.to_numeric(out["amount"], errors="coerce")
    if amount.isna().any() or (amount <= 0).any() or not np.isfinite(amount).all():
        raise InputError("column amount must hold positive finite numbers", field=field)
    out["amount"] = amount.astype(np.float64)
    label = pd.to_numeric(out["label"], errors="coerce")
    if label.isna().any() or not label.isin([0, 1]).all():
        raise InputError("column label must hold 0 or 1", field=field)
    out["label"] = label.astype(np.int8)
    if "typology" not in out.columns:
        out["typology"] = np.where(out["label"] == 1, "unknown", "normal")
    return out.sort_values("timestamp", kind="stable").reset_index(drop=True)


def _timestamps(col: pd.Series, field: str) -> pd.Series:
    try:
        if pd.api.types.is_datetime64_any_dtype(col):
            ts = pd.to_datetime(col, utc=True)
        elif pd.api.types.is_numeric_dtype(col):
            ts = pd.to_datetime(col, unit="s", utc=True)
        else:
            ts = pd.to_datetime(col, utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise InputError(f"column timestamp: {exc}", field=field) from None
    if ts.isna().any():
        raise InputError("column timestamp has empty values", field=field)
    return ts


def summary(table: pd.DataFrame) -> dict[str, Any]:
    """Counts a report shows: rows, laundering share, cross-bank share, per typology."""
    lab = table[table["label"] == 1]
    return {
        "rows": len(table),
        "laundering": len(lab),
        "laundering_share": float(len(lab) / max(len(table), 1)),
        "cross_bank_share_laundering": float((lab["src_bank"] != lab["dst_bank"]).mean())
        if len(lab)
        else 0.0,
        "cross_bank_share_normal": float(
            (table["src_bank"] != table["dst_bank"])[table["label"] == 0].mean()
        ),
        "typologies": {str(k): int(v) for k, v in lab["typology"].value_counts().items()},
    }
