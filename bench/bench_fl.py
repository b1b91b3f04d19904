"""Federated AML across five banks: detection, poisoning, and time per round in both modes.

    .venv/bin/python bench/bench_fl.py [--quick]      # prints JSON
    ledgerml bench fl [--quick]                       # also writes bench/results/fl.json

Each scenario is `ledgerml fl run` in a fresh project (the same code path as the CLI):
the seeded generator (`ledgerml.datasets.aml`, seed 7, 5 banks, 10,000 accounts, 120
days), held-out test set = the last 25% of the time span, XGBoost trust-weighted
bagging, 10 rounds of 5 local trees:

* `clean` — simulation (Flower's Ray runtime, in-process);
* `flip`, `scale` — bank B2 poisons (labels flipped; update scaled x10);
* `deployment` — the clean run again with `flower-superlink` + 5 `flower-supernode`
  processes on 127.0.0.1 (same apps; the final model CID must equal the simulation's).

Figures: recall at 1% FPR and AUPRC for federated, mean local-only, centralized; the
poisoner's trust per round and its round of falling below every other bank; seconds per
round and in total for each mode. Quick mode: 3 rounds, no deployment run.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SEED = 7
POISONER = "B2"


def _scenario(
    folder: Path, name: str, progress: Callable[[str], None], **kw: Any
) -> dict[str, Any]:
    from ledgerml.federated import FlOptions, run_federated
    from ledgerml.ledger import init_project

    paths = init_project(folder / name)
    t0 = time.perf_counter()

    def tick(info: dict[str, Any]) -> None:
        progress(f"{name}: round {info['round']} in {info['seconds']:.1f}s")

    result = run_federated(paths, FlOptions(seed=SEED, **kw), progress=tick)
    wall = time.perf_counter() - t0
    comp = result.comparison
    trust = [{b: round(t, 4) for b, t in r["trust"].items()} for r in result.rounds]
    out: dict[str, Any] = {
        "model_cid": result.model_cid,
        "federated": comp["federated"],
        "local_mean": comp["local_mean"],
        "local": comp["local"],
        "centralized": comp["centralized"],
        "improvement_vs_local_mean": comp["improvement_vs_local_mean"],
        "simple_features": comp["simple_features"],
        "test_set": comp["test_set"],
        "trust_per_round": trust,
        "seconds_per_round": [round(float(r["seconds"]), 3) for r in result.rounds],
        "seconds": result.seconds,
        "wall_seconds": round(wall, 2),
    }
    poisoner = kw.get("poison")
    if poisoner:
        below = [
            i + 1
            for i, t in enumerate(trust)
            if t[poisoner] < min(v for b, v in t.items() if b != poisoner)
        ]
        out["poisoner"] = poisoner
        out["poisoner_below_all_others_from_round"] = below[0] if below else None
    return out


def run(quick: bool = False, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    rounds = 3 if quick else 10
    figures: dict[str, Any] = {"seed": SEED, "banks": 5, "rounds": rounds}
    with tempfile.TemporaryDirectory(prefix="ledgerml-bench-fl-") as tmp:
        folder = Path(tmp)
        clean = _scenario(folder, "clean", progress, rounds=rounds)
        figures["clean"] = clean
        for mode in ("flip", "scale"):
            run_ = _scenario(
                folder, mode, progress, rounds=rounds, poison=POISONER, poison_mode=mode
            )
            run_["auprc_vs_clean"] = run_["federated"]["auprc"] / clean["federated"]["auprc"]
            figures[f"poison_{mode}"] = run_
        if not quick:
            dep = _scenario(folder, "deployment", progress, rounds=rounds, mode="deployment")
            dep["same_model_as_simulation"] = dep["model_cid"] == clean["model_cid"]
            figures["deployment"] = dep
    imp = clean["improvement_vs_local_mean"]
    figures["headline"] = {
        "federated_recall_at_1pct_fpr": clean["federated"]["recall_at_1pct_fpr"],
        "federated_auprc": clean["federated"]["auprc"],
        "local_mean_recall_at_1pct_fpr": clean["local_mean"]["recall_at_1pct_fpr"],
        "local_mean_auprc": clean["local_mean"]["auprc"],
        "centralized_recall_at_1pct_fpr": clean["centralized"]["recall_at_1pct_fpr"],
        "centralized_auprc": clean["centralized"]["auprc"],
        "recall_gain_vs_local_mean": imp["recall_at_1pct_fpr"],
        "auprc_gain_vs_local_mean": imp["auprc"],
        "target_35pct_met": imp["recall_at_1pct_fpr"] >= 0.35 and imp["auprc"] >= 0.35,
        "simulation_seconds_per_round": clean["seconds"]["per_round_mean"],
        "simulation_seconds_total": clean["wall_seconds"],
    }
    if "deployment" in figures:
        figures["headline"]["deployment_seconds_per_round"] = figures["deployment"]["seconds"][
            "per_round_mean"
        ]
        figures["headline"]["deployment_seconds_total"] = figures["deployment"]["wall_seconds"]
    return figures


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:], progress=lambda m: None), indent=2))
