"""`ledgerml demo`: the card-fraud case study end to end, on the embedded defaults."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ledgerml.cli._common import EXIT_VERIFY, console, print_json

if TYPE_CHECKING:  # the case study pulls in the whole stack: imported when it runs
    from ledgerml.demo import DemoResult


def _summary(r: DemoResult) -> Table:
    table = Table(title="LedgerML demo — card fraud", show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("XGBoost", justify="right")
    table.add_column("logistic baseline", justify="right")
    table.add_column("rules baseline", justify="right")
    lr, rules = r.baselines.get("logreg", {}), r.baselines.get("rules", {})
    for key, label, fmt in (
        ("auprc", "AUPRC (held-out, later 20%)", "{:.3f}"),
        ("roc_auc", "ROC-AUC", "{:.3f}"),
        ("fp_at_80_recall", "false positives at 80% recall", "{:,.0f}"),
        ("fpr_at_80_recall", "FPR at 80% recall", "{:.4%}"),
    ):
        table.add_row(
            label,
            *(fmt.format(d[key]) if key in d else "-" for d in (r.metrics, lr, rules)),
        )
    table.add_row(
        "FP ratio vs logistic (paper: ≤ 0.5)",
        f"{r.metrics.get('fp_ratio_vs_logreg', 0):.2f}",
        "1.00",
        "",
    )
    return table


def _backtest_text(r: DemoResult) -> str:
    if not r.backtest:
        return "none"
    s = r.backtest["summary"]

    def ratio(v: float | None) -> str:
        return "undefined" if v is None else f"{v:.2f}"

    per_fold = ", ".join(ratio(f["metrics"]["fp_ratio_vs_logreg"]) for f in r.backtest["folds"])
    return (
        f"{s['folds']} folds; FP ratio vs logistic {per_fold} (worst "
        f"{ratio(s['worst_fp_ratio_vs_logreg'])}; ≤ 0.5 on {s['folds_fp_ratio_vs_logreg_le_0_5']} "
        f"of {s['folds']}); AUPRC median {s['median_auprc']:.3f}, worst {s['worst_auprc']:.3f}"
    )


def _facts(r: DemoResult) -> Table:
    facts = Table(show_header=False, box=None)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column(overflow="fold")
    rows = [
        ("data", f"{'real ULB' if r.real_data else 'SYNTHETIC stand-in'}  {r.dataset_cid}"),
        ("model", r.model_cid),
        (
            "policy pack fraud-model",
            ("passed" if r.check_passed else "FAILED: " + ", ".join(r.failed_rules))
            + (
                f" (XGBoost refused on {', '.join(r.refused_rules)}; champion: the logistic "
                f"regression {r.champion_cid})"
                if r.refused_rules
                else ""
            ),
        ),
        ("promoted to champion", "yes (risk + compliance approvals)" if r.promoted else "no"),
        ("backtest", _backtest_text(r)),
        ("decisions recorded", f"{r.decisions:,} ({r.alerts:,} alerts with reason codes)"),
        (
            "drift",
            f"max PSI {r.max_psi:.3f} ({r.max_psi_feature}); "
            + ("RetrainRequired on chain" if r.retrain_required else "below the limit"),
        ),
    ]
    if r.retrained_cid:
        rows.append(
            (
                "retrained model",
                f"{r.retrained_cid}: "
                + (
                    "passes the gate"
                    if r.retrained_passed
                    else "refused: " + ", ".join(r.retrained_failed)
                ),
            )
        )
    rows += [
        (
            "ledger",
            f"{r.tree_size:,} entries; decision {r.proved_index} proved "
            f"({'verifies' if r.proof_ok else 'FAILS'})",
        ),
        ("anchors checked", str(r.anchors_checked)),
        ("verification", f"{'OK' if r.verify_ok else 'FAILED'} in {r.verify_seconds:.2f}s"),
        ("time", f"{r.seconds:.0f}s  " + ", ".join(f"{k} {v:.0f}s" for k, v in r.timings.items())),
    ]
    for k, v in rows:
        facts.add_row(k, v)
    return facts


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        folder: Annotated[
            Path, typer.Option("--dir", help="Folder for the demo project (recreated).")
        ] = Path("ledgerml-demo"),
        synthetic: Annotated[
            bool,
            typer.Option("--synthetic", help="Use a seeded synthetic table, not the ULB data."),
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Run the card-fraud case study end to end on the embedded defaults."""
        from ledgerml.demo import run_demo

        result = run_demo(
            folder.resolve(),
            synthetic=synthetic,
            say=(lambda _m: None) if as_json else console.print,
        )
        if as_json:
            data = asdict(result)
            data["home"] = str(result.home)
            print_json(data)
        else:
            console.print(_summary(result))
            console.print(_facts(result))
        if not (result.proof_ok and result.verify_ok):
            raise typer.Exit(EXIT_VERIFY)
