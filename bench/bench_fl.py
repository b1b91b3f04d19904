"""Federated AML across five banks: detection, poisoning, and time per round in both modes.

    .venv/bin/python bench/bench_fl.py [--quick]      # prints JSON
    ledgerml bench fl [--quick]                       # also writes bench/results/fl.json
    ledgerml bench fl --seeds 5                       # bench/results/fl-seeds.json
    .venv/bin/python bench/bench_fl.py --seeds 5 --other-simulator   # tests' simulator

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

`--seeds K` (issue 15) instead runs only the clean simulation, for generator seeds 7 ..
7+K-1, and reports per row (federated, mean of the banks alone, centralized, centralized
with the federated tree budget, the banks' views pooled and scored like the federated
model or from the sender's bank's view only) the mean and 95% t-interval of
recall at 1% FPR and AUPRC over the seeds, plus the paired differences federated − row.
With `--other-simulator` the table each seed is the test suite's independently written
simulator (`tests.federated.test_cli.other_simulator`, 4 banks) with that seed.
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

    result = run_federated(paths, FlOptions(**({"seed": SEED} | kw)), progress=tick)
    wall = time.perf_counter() - t0
    comp = result.comparison
    trust = [{b: round(t, 4) for b, t in r["trust"].items()} for r in result.rounds]
    out: dict[str, Any] = {
        "model_cid": result.model_cid,
        "federated": comp["federated"],
        "local_mean": comp["local_mean"],
        "local": comp["local"],
        "centralized": comp["centralized"],
        "centralized_same_budget": comp["centralized_same_budget"],
        "pooled_bank_views": comp["pooled_bank_views"],
        "pooled_bank_views_sender_only": comp["pooled_bank_views_sender_only"],
        "trees": comp["trees"],
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


def _seed_table(summary: dict[str, Any]) -> list[str]:
    """The intervals as aligned text lines (mean [low, high])."""

    def cell(iv: Any) -> str:
        return f"{iv.mean:.3f} [{iv.low:.3f}, {iv.high:.3f}]"

    lines = [f"{'row':<44} {'recall @ 1% FPR':<24} AUPRC"]
    for group in ("rows", "differences"):
        for row, m in summary[group].items():
            lines.append(f"{row:<44} {cell(m['recall_at_1pct_fpr']):<24} {cell(m['auprc'])}")
    return lines


def run_seeds(
    seeds: int,
    quick: bool = False,
    progress: Callable[[str], None] = print,
    other_simulator: bool = False,
) -> dict[str, Any]:
    """The clean run over `seeds` seeds; intervals per row (see the module docstring)."""
    from ledgerml.federated.evaluation import SEED_ROWS, seed_summary

    if seeds < 2:
        raise ValueError(f"seeds: a t-interval needs at least 2 seeds, got {seeds}")
    rounds = 3 if quick else 10
    per_seed: list[dict[str, Any]] = []
    if other_simulator:  # the test suite's simulator, from the checkout
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.federated.test_cli import other_simulator as simulate
    with tempfile.TemporaryDirectory(prefix="ledgerml-bench-fl-") as tmp:
        folder = Path(tmp)
        for seed in range(SEED, SEED + seeds):
            kw: dict[str, Any] = {"rounds": rounds, "seed": seed}
            if other_simulator:
                kw["data"], _ = simulate(folder / f"table-{seed}.csv", seed=seed)
            out = _scenario(folder, f"seed-{seed}", progress, **kw)
            out.pop("trust_per_round")
            per_seed.append({"seed": seed} | out)
            auprc = {r: out[r]["auprc"] for r in SEED_ROWS}
            progress(f"seed {seed}: AUPRC " + ", ".join(f"{r} {v:.3f}" for r, v in auprc.items()))
    summary = seed_summary(per_seed, SEED_ROWS)
    table = _seed_table(summary)
    for line in table:
        progress(line)
    return {
        "table": "other-simulator (tests.federated.test_cli)" if other_simulator else "generator",
        "seeds": list(range(SEED, SEED + seeds)),
        "rounds": rounds,
        "confidence": 0.95,
        "intervals": {
            group: {r: {m: iv.to_json() for m, iv in ms.items()} for r, ms in rows.items()}
            for group, rows in summary.items()
        },
        "text": table,
        "per_seed": per_seed,
    }


def run(
    quick: bool = False, progress: Callable[[str], None] = print, seeds: int = 0
) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring)."""
    if seeds:
        return run_seeds(seeds, quick, progress)
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
    args = sys.argv[1:]
    quick = "--quick" in args
    if "--seeds" in args:
        k = int(args[args.index("--seeds") + 1])
        other = "--other-simulator" in args
        figures = run_seeds(k, quick, lambda m: print(m, file=sys.stderr), other)
    else:
        figures = run(quick=quick, progress=lambda m: None)
    print(json.dumps(figures, indent=2))
