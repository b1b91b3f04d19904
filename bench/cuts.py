"""Default XGBoost on time-ordered cuts of any table: false positives at 80% recall on all
the rows after each cut, against the logistic baseline trained on the same rows, with the
paired bootstrap interval of the ratio.

    .venv/bin/python bench/cuts.py TABLE.csv --target Class [--time-column Time]
        [--drop a,b] [--cuts 0.5,0.6,0.7,0.8,0.9] [--params JSON] [--seed 0]   # prints JSON

Why a script: issue 15's second "Done when" line asks this of ULB
(`tests/mlops/test_ulb_cuts.py`, opt-in); the same measurement on another table is how a
default is judged on data nobody tuned to. Nothing is recorded; nothing is tuned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def run(
    path: str,
    target: str,
    time_column: str | None,
    drop: list[str],
    cuts: list[float],
    params: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    from ledgerml.mlops import _metrics
    from ledgerml.mlops.datasets import _read_table
    from ledgerml.mlops.evaluation import _fit_logreg_baseline
    from ledgerml.mlops.training import fit_model_used, model_from_bytes, prepare

    table = _read_table(Path(path))
    out: dict[str, Any] = {"table": path, "rows": table.num_rows, "params": params, "cuts": []}
    for cut in cuts:
        t0 = time.perf_counter()
        prep = prepare(table, target, time_column, cut, drop=drop)
        a = prep.split.train_rows
        raw, used = fit_model_used(prep, "xgboost", params, seed)
        model = model_from_bytes("cut", raw)
        scores = model.predict_proba(prep.x[a:])
        base = _fit_logreg_baseline(prep.x[:a], prep.y[:a], seed)(prep.x[a:])
        fp = _metrics.fp_at_recall(scores, prep.y[a:])[0]
        base_fp = _metrics.fp_at_recall(base, prep.y[a:])[0]
        row = {
            "cut": cut,
            "train_rows": a,
            "test_rows": int(len(prep.y) - a),
            "test_frauds": int(prep.y[a:].sum()),
            "rounds": used["num_boost_round"],
            "fp80": fp,
            "fp80_logreg": base_fp,
            "ratio": round(_metrics.fp_ratio(fp, base_fp), 4) if base_fp else None,
            "interval": _metrics.fp_ratio_interval(scores, base, prep.y[a:], seed=[seed, a]),
            "auprc": round(_metrics.average_precision(scores, prep.y[a:]), 4),
            "auprc_logreg": round(_metrics.average_precision(base, prep.y[a:]), 4),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        out["cuts"].append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    out["holds"] = sum(1 for r in out["cuts"] if r["fp80"] <= r["fp80_logreg"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("table")
    ap.add_argument("--target", required=True)
    ap.add_argument("--time-column", default="Time")
    ap.add_argument("--drop", default="")
    ap.add_argument("--cuts", default="0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--params", default="{}")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    res = run(
        args.table,
        args.target,
        None if args.time_column == "none" else args.time_column,
        [c for c in args.drop.split(",") if c],
        [float(c) for c in args.cuts.split(",")],
        json.loads(args.params),
        args.seed,
    )
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
