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
    from ledgerml.mlops.backtest import compare_at_cut
    from ledgerml.mlops.datasets import _read_table

    table = _read_table(Path(path))
    out: dict[str, Any] = {"table": path, "rows": table.num_rows, "params": params, "cuts": []}
    for cut in cuts:
        row = compare_at_cut(table, target, time_column, cut, drop=drop, params=params, seed=seed)
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
