"""`ledgerml monitor`: drift of a scoring window against a model's training window.

No logic here: parse, call `ledgerml.retrain.monitor`, print. Exit codes: 0 when drift
is recorded (even above the limit: "retraining required" is a finding, not a failure),
1 only when a retrained model fails the gate, 2 on bad input (nothing recorded).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ledgerml.cli._common import EXIT_VERIFY, console, print_json, project

#: Features shown in the human-readable table (all of them go to --json and the ledger).
TOP = 10


def monitor_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID.")],
    window: Annotated[
        str, typer.Option("--window", help="Scoring window: a registered data set name or CID.")
    ],
    retrain: Annotated[
        bool,
        typer.Option(
            "--retrain",
            help="If the contract requires it, retrain (on the training data plus the window, "
            "unless --window-only) and check.",
        ),
    ] = False,
    window_only: Annotated[
        bool,
        typer.Option(
            "--window-only",
            help="Retrain on the window alone instead of the expanding window (training data "
            "followed by the window, registered as one data set).",
        ),
    ] = False,
    policy: Annotated[
        str, typer.Option("--policy", help="Policy pack for the gate (and enrolment).")
    ] = "fraud-model",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """PSI per feature of MODEL's training window vs --window; report drift to the contract."""
    from ledgerml.cli.train_cmd import _stages
    from ledgerml.retrain import monitor

    with _stages(not as_json) as progress:
        res = monitor(
            project(ctx),
            model,
            window,
            retrain=retrain,
            expanding=not window_only,
            policy=policy,
            progress=progress,
        )
    failed_gate = res.check is not None and not res.check.passed
    if as_json:
        print_json(res.to_json())
    else:
        from rich.table import Table

        table = Table(title=f"PSI, training window vs {res.window_name} ({res.window_cid})")
        for col in ("feature", "PSI", f"> {res.threshold:g}"):
            table.add_column(col)
        for name, value in list(res.psi.items())[:TOP]:
            table.add_row(name, f"{value:.4f}", "[red]yes[/]" if value > res.threshold else "no")
        console.print(table)
        if len(res.psi) > TOP:
            console.print(f"  … {len(res.psi) - TOP} more feature(s) in --json", highlight=False)
        where = "ModelRegistry" if res.on_chain else "pack (off-chain)"
        console.print(
            f"max PSI {res.max_psi:.4f} ({escape(res.max_feature)}), limit {res.threshold:g} "
            f"from the {where}",
            highlight=False,
        )
        if res.retrain_required:
            why = "" if res.exceeded else ", marked by an earlier drift report"
            console.print(f"[bold yellow]retraining required[/] (RetrainRequired on chain{why})")
            if res.new_model_cid is None:
                console.print("  run again with --retrain to retrain on this window")
        elif res.exceeded:
            console.print("[bold yellow]drift above the limit[/] (no contract verdict)")
        else:
            console.print("[green]stable[/]: within the policy limit")
        for index, event_type in res.entries:
            console.print(f"  ledger #{index} {event_type}", highlight=False)
        if res.tx_hash:
            console.print(f"  tx {res.tx_hash}", highlight=False)
        if res.note:
            console.print(f"  note: {escape(res.note)}", highlight=False)
        if res.new_model_cid is not None and res.check is not None:
            metrics = res.evaluation or {}
            shown = ", ".join(f"{k} {metrics[k]:.4g}" for k in ("auprc", "roc_auc") if k in metrics)
            console.print(f"retrained: {res.new_model_cid} ({shown})", highlight=False)
            verdict = (
                "[green]passed[/]"
                if res.check.passed
                else f"[red]failed[/]: {', '.join(res.check.failed)}"
            )
            console.print(f"  gate {res.check.pack} {verdict}", highlight=False)
            if res.check.tx_hash:
                console.print(f"  tx {res.check.tx_hash}", highlight=False)
            if res.check.note:
                console.print(f"  note: {escape(res.check.note)}", highlight=False)
    if failed_gate:
        raise typer.Exit(EXIT_VERIFY)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_cmd)
