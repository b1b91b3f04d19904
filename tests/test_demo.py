"""`ledgerml demo` runs end to end and leaves a log that verifies independently."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli


def test_demo_runs_and_its_proof_verifies(tmp_path: Path) -> None:
    from ledgerml.ledger import merkle

    folder = tmp_path / "demo"
    # --synthetic: `make test` must not download the ULB data (make demo does)
    # 300 s: the demo also backtests its model (3 folds) before the gate
    r = run_cli(
        tmp_path / "unused", "demo", "--dir", str(folder), "--synthetic", "--json", timeout=300
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verify_ok"] and out["proof_ok"] and out["tree_size"] > 500
    assert out["real_data"] is False and out["anchors_checked"] == 1
    assert out["metrics"]["auprc"] > 0.6  # the seeded table is learnable, the policy passes
    bt = out["backtest"]  # recorded, and the gate read it: the model was promoted
    assert len(bt["folds"]) == 3 and bt["ledger_index"] is not None and out["promoted"]
    proof = out["proof"]
    assert merkle.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        proof["leaf_index"],
        proof["tree_size"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["root"]),
    )
    home = Path(out["home"])
    verify = json.loads(run_cli(home, "verify", "--json").stdout)
    assert verify["ok"] and verify["tree_size"] == out["tree_size"]
    # a second run recreates its own folder, and refuses to clobber a foreign one
    again = run_cli(
        tmp_path / "unused", "demo", "--dir", str(folder), "--synthetic", "--json", timeout=300
    )
    assert again.returncode == 0
    assert json.loads(again.stdout)["dataset_cid"] == out["dataset_cid"]  # same input, same CID
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep")
    r = run_cli(tmp_path / "unused", "demo", "--dir", str(foreign))
    assert r.returncode == 2 and (foreign / "precious.txt").exists()
