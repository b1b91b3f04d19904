"""`ledgerml backtest`: rolling-origin evaluation over K time-ordered folds.

No logic here: parse, call `ledgerml.mlops.backtest.backtest`, print the per-fold table.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ledgerml.cli._common import console, print_json, project
from ledgerml.errors import InputError


def _fmt(v: Any, spec: str) -> str:
    return "undefined" if v is None else format(v, spec)


def register(app: typer.Typer) -> None:
    """Mount `ledgerml backtest`."""

    @app.command("backtest")
    def backtest_cmd(
        ctx: typer.Context,
        data: Annotated[str | None, typer.Option("--data", help="Data set name or CID.")] = None,
        target: Annotated[str, typer.Option("--target", help="0/1 label column.")] = "Class",
        model: Annotated[
            str | None,
            typer.Option("--model", help="CID of a trained model: repeat its recipe instead."),
        ] = None,
        model_type: Annotated[
            str, typer.Option("--model-type", help="xgboost or logreg.")
        ] = "xgboost",
        params: Annotated[
            str | None, typer.Option("--params", help="JSON object of model parameters.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
        time_column: Annotated[
            str,
            typer.Option("--time-column", help="Column giving time order, or 'none' (row order)."),
        ] = "Time",
        drop: Annotated[
            str | None, typer.Option("--drop", help="Comma-separated columns not to use.")
        ] = None,
        folds: Annotated[int, typer.Option("--folds", help="Number of test folds (2-9).")] = 5,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Train before each of K later windows, score model and baselines on it, record it."""
        from ledgerml.cli.train_cmd import _params, _stages, _time_column
        from ledgerml.mlops.backtest import backtest

        paths = project(ctx)
        parsed = _params(params)
        if model is None and data is None:
            raise InputError(
                "name the data set (--data) or a trained model (--model)", field="--data"
            )
        with _stages(not as_json) as progress:
            res = backtest(
                paths,
                data=data,
                target=target,
                model=model,
                model_type=model_type,
                params=parsed,
                seed=seed,
                time_column=_time_column(time_column),
                drop=[c.strip() for c in (drop or "").split(",") if c.strip()],
                folds=folds,
                progress=progress,
            )
        if as_json:
            print_json(res.to_json())
            return
        from rich.table import Table

        t = Table(title=f"backtest of {res.model_type} on {res.dataset_cid[:16]}…, seed {res.seed}")
        for col in ("fold", "train rows", "test rows", "frauds", "rounds", "AUPRC", "ROC-AUC"):
            t.add_column(col, justify="right")
        for col in ("FP@80", "logreg FP@80", "rules FP@80", "ratio vs logreg", "ratio vs rules"):
            t.add_column(col, justify="right")
        for f in res.folds:
            m, lr, ru = f.metrics, f.baselines["logreg"], f.baselines["rules"]
            t.add_row(
                str(f.fold),
                f"{f.train_rows:,}",
                f"{f.test_rows:,}",
                str(f.test_positives),
                "-" if f.rounds is None else str(f.rounds),
                _fmt(m["auprc"], ".3f"),
                _fmt(m["roc_auc"], ".4f"),
                _fmt(m["fp_at_80_recall"], ".0f"),
                _fmt(lr["fp_at_80_recall"], ".0f"),
                _fmt(ru["fp_at_80_recall"], ".0f"),
                _fmt(m["fp_ratio_vs_logreg"], ".2f"),
                _fmt(m["fp_ratio_vs_rules"], ".2f"),
            )
        console.print(t)
        s = res.summary
        console.print(
            f"median / worst: AUPRC {_fmt(s['median_auprc'], '.3f')} / "
            f"{_fmt(s['worst_auprc'], '.3f')}, FP ratio vs logreg "
            f"{_fmt(s['median_fp_ratio_vs_logreg'], '.2f')} / "
            f"{_fmt(s['worst_fp_ratio_vs_logreg'], '.2f')}, vs rules "
            f"{_fmt(s['median_fp_ratio_vs_rules'], '.2f')} / "
            f"{_fmt(s['worst_fp_ratio_vs_rules'], '.2f')}; "
            f"folds with at most half the logreg's false positives: "
            f"{s['folds_fp_ratio_vs_logreg_le_0_5']}/{s['folds']}",
            highlight=False,
        )
        console.print(
            f"plot {res.plot}; ledger entry {res.ledger_index}; {res.seconds:.1f}s",
            highlight=False,
        )
