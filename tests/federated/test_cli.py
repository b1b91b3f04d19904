"""`ledgerml fl run` as a user runs it: bad input, a table from another simulator with a
forged bank, and deployment mode with real SuperLink/SuperNode processes."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ledgerml.config import ProjectPaths
from ledgerml.datasets.aml import load_transactions
from ledgerml.errors import InputError
from ledgerml.ledger import open_ledger
from tests.conftest import run_cli

BANKS = ("north", "south", "east", "west")


def other_simulator(path: Path, seed: int = 5) -> tuple[Path, int]:
    """An independently written simulator (not ledgerml.datasets.aml): uniform random
    background transfers, plus layering chains that hop through at least three banks,
    each hop a day or two after the money arrived, skimming 1-3%. Returns the path and
    the number of chains."""
    rng = np.random.default_rng(seed)
    n_acc, days = 1600, 90
    bank = rng.integers(0, len(BANKS), n_acc)
    rows = []
    for day in range(days):
        k = rng.poisson(0.45 * n_acc)
        src = rng.integers(0, n_acc, k)
        dst = rng.integers(0, n_acc, k)
        t = day * 86400 + rng.uniform(0, 86400, k)
        amt = np.round(np.exp(rng.normal(5.0, 1.1, k)), 2)
        rows += [(s, d, tt, a, 0) for s, d, tt, a in zip(src, dst, t, amt, strict=False) if s != d]
    chains = 70
    for _ in range(chains):
        hops = rng.integers(4, 7)
        members: list[int] = []
        while len({int(bank[m]) for m in members}) < 3 or len(members) < hops:
            members = list(rng.choice(n_acc, size=hops, replace=False))
        t = rng.uniform(0, (days - 10) * 86400)
        amount = float(np.exp(rng.normal(7.5, 0.6)))
        for a, b in itertools.pairwise(members):
            t += rng.uniform(0.5, 2.0) * 86400
            amount *= 1 - rng.uniform(0.01, 0.03)
            rows.append((a, b, t, round(amount, 2), 1))
    df = pd.DataFrame(rows, columns=["s", "d", "t", "amount", "label"]).sort_values("t")
    out = pd.DataFrame(
        {
            "tx_id": [f"x{i}" for i in range(len(df))],
            "timestamp": pd.to_datetime(
                df["t"], unit="s", origin="2025-06-01", utc=True
            ).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "src_account": [f"acct-{s}" for s in df["s"]],
            "src_bank": [BANKS[bank[s]] for s in df["s"]],
            "dst_account": [f"acct-{d}" for d in df["d"]],
            "dst_bank": [BANKS[bank[d]] for d in df["d"]],
            "amount": df["amount"].to_numpy(),
            "label": df["label"].to_numpy(),
            "channel": "wire",  # extra columns are ignored
        }
    )
    out.to_csv(path, index=False)
    return path, chains


def _ledger(home: Path) -> list[dict]:
    """Every entry (type, body) of the project's ledger, read directly."""
    if not (home / "ledger.db").exists():
        return []
    with open_ledger(ProjectPaths(home)) as ledger:
        return [json.loads(raw) for _, raw in ledger.entries()]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--banks", "0"], "--banks"),
        (["--rounds", "0"], "--rounds"),
        (["--poison", "B9"], "--poison"),
        (["--data", "MISSING"], "--data"),
    ],
)
def test_bad_input_exits_2_naming_it_and_records_nothing(
    tmp_path: Path, args: list[str], named: str
) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    if args[0] == "--data":  # a table without the amount column
        table = tmp_path / "no-amount.csv"
        table.write_text(
            "tx_id,timestamp,src_account,src_bank,dst_account,dst_bank,label\n"
            "1,2026-01-01T00:00:00Z,a,X,b,Y,0\n"
        )
        args = ["--data", str(table)]
    res = run_cli(home, "fl", "run", *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert named in res.stderr
    if named == "--data":
        assert "amount" in res.stderr
    assert _ledger(home) == []


def test_load_transactions_reads_parquet_with_epoch_seconds(tmp_path: Path) -> None:
    csv, _ = other_simulator(tmp_path / "t.csv")
    table = pd.read_csv(csv)
    table["timestamp"] = (
        pd.to_datetime(table["timestamp"], utc=True) - pd.Timestamp("1970-01-01", tz="UTC")
    ).dt.total_seconds()
    table.to_parquet(tmp_path / "t.parquet")
    loaded = load_transactions(tmp_path / "t.parquet")
    assert len(loaded) == len(table) and loaded["timestamp"].is_monotonic_increasing
    table.drop(columns=["label"]).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="label"):
        load_transactions(tmp_path / "bad.parquet")


@pytest.mark.slow
def test_data_from_another_simulator_and_a_forged_bank(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    csv, _ = other_simulator(tmp_path / "other.csv")
    res = run_cli(
        home,
        "fl",
        "run",
        "--data",
        str(csv),
        "--rounds",
        "2",
        "--forge",
        "west",
        "--json",
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["banks"] == sorted(BANKS)
    assert out["data"]["source"] == "file"
    comp = out["comparison"]
    # the chains are learnable from the banks' fragments
    assert comp["federated"]["auprc"] > 5 * comp["simple_features"]["base_rate"]
    entries = _ledger(home)
    rejected = [e for e in entries if e["type"] == "fl.update_rejected"]
    assert [(e["body"]["bank"], e["body"]["round"]) for e in rejected] == [("west", 1), ("west", 2)]
    assert all("signature" in e["body"]["reason"] for e in rejected)
    for e in (e for e in entries if e["type"] == "fl.round"):
        west = next(u for u in e["body"]["updates"] if u["bank"] == "west")
        assert west["signature_ok"] is False and west["weight"] == 0.0
        assert "update_cid" not in west  # a rejected update is not kept


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if text.encode() in (p / "cmdline").read_bytes():
                    found.append(int(p.name))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_deployment_mode_runs_separate_processes(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    res = run_cli(
        home,
        "fl",
        "run",
        "--banks",
        "3",
        "--rounds",
        "1",
        "--mode",
        "deployment",
        "--json",
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["mode"] == "deployment" and len(out["rounds"]) == 1
    workdir = home / "fl" / out["run_id"]
    logs = workdir / "logs"
    assert (logs / "superlink.log").exists()
    assert sorted(p.name for p in logs.glob("supernode-*.log")) == [
        "supernode-B1.log",
        "supernode-B2.log",
        "supernode-B3.log",
    ]
    rounds = [e for e in _ledger(home) if e["type"] == "fl.round"]
    assert len(rounds) == 1 and len(rounds[0]["body"]["updates"]) == 3
    assert _processes_mentioning(str(workdir)) == []  # every process was stopped


@pytest.mark.slow
def test_anchor_needs_contracts_then_anchors_every_round(tmp_path: Path) -> None:
    home = tmp_path / "proj"
    assert run_cli(home, "init").returncode == 0
    res = run_cli(home, "fl", "run", "--banks", "3", "--rounds", "1", "--anchor")
    assert res.returncode == 2 and "--anchor" in res.stderr
    assert _ledger(home) == []
    assert run_cli(home, "chain", "deploy").returncode == 0
    res = run_cli(
        home, "fl", "run", "--banks", "3", "--rounds", "1", "--anchor", "--json", timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    entries = _ledger(home)
    anchored = [i for i, e in enumerate(entries) if e["type"] == "checkpoint.anchored"]
    rounds = [i for i, e in enumerate(entries) if e["type"] == "fl.round"]
    assert anchored and rounds and anchored[-1] > rounds[-1]
    assert out["anchor"]["tree_size"] > rounds[-1]  # the anchored tree holds the round
    assert out["anchor"]["tx_hash"].startswith("0x")
