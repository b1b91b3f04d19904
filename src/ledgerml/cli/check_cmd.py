"""`ledgerml check`, `card`, `policies`: compliance policy packs and model cards.

The work happens in `ledgerml.compliance` and `ledgerml.mlops.model_card`; this module parses
options and prints. A failed rule exits 1 (policy failure, the check is still recorded);
bad input (unknown pack, model or column) exits 2 with nothing recorded.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from ledgerml.cli._common import EXIT_VERIFY, console, print_json, project

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _value(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def check_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID.")],
    policy: Annotated[str, typer.Option("--policy", help="Policy pack, e.g. fraud-model.")],
    protected: Annotated[
        list[str] | None,
        typer.Option("--protected", help="Protected attribute column; repeatable."),
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="Data set (name or CID) to screen for fairness.")
    ] = None,
    no_submit: Annotated[
        bool, typer.Option("--no-submit", help="Record the check off-chain only.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check MODEL against a policy pack; record one compliance.checked and submit to the chain."""
    from ledgerml.compliance.checking import check_model

    result = check_model(
        project(ctx), model, policy, protected=protected or None, data=data, submit=not no_submit
    )
    if as_json:
        print_json(result.to_json())
    else:
        from rich.table import Table

        table = Table(title=f"{result.pack} ({result.policy_id}) for {model}", show_lines=False)
        for col in ("rule", "regulation", "value", "threshold", "pass"):
            table.add_column(col, overflow="fold")
        for r in result.results:
            mark = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
            where = " (chain)" if r.on_chain else ""
            table.add_row(
                r.rule_id,
                r.regulation[:90] + ("…" if len(r.regulation) > 90 else ""),
                _value(r.value),
                f"{r.comparator} {r.threshold:g}",
                mark + where,
            )
        console.print(table)
        for r in result.results:
            if not r.passed:
                console.print(
                    f"  [red]{r.rule_id}[/]: {_value(r.value)}, needs {r.comparator} "
                    f"{r.threshold:g} — {escape(r.detail)}",
                    highlight=False,
                )
        verdict = (
            "[green]passed[/]" if result.passed else f"[red]failed[/]: {', '.join(result.failed)}"
        )
        console.print(f"policy {result.pack} {verdict}", highlight=False)
        for index, event_type in result.entries:
            console.print(f"  ledger #{index} {event_type}", highlight=False)
        if result.tx_hash:
            console.print(f"  tx {result.tx_hash}", highlight=False)
        if result.note:
            console.print(f"  note: {result.note}", highlight=False)
    if not result.passed:
        raise typer.Exit(EXIT_VERIFY)


def card_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model CID.")],
    intended_use: Annotated[
        str, typer.Option("--intended-use", help="What the model is for, and for whom.")
    ],
    limitation: Annotated[
        list[str] | None, typer.Option("--limitation", help="A known limitation; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build MODEL's card from the ledger (Markdown + JSON in the CAS); record model.documented."""
    from ledgerml.mlops.model_card import build_model_card

    card = build_model_card(project(ctx), model, intended_use, limitation or [])
    if as_json:
        print_json(card.to_json())
        return
    console.print(card.markdown, highlight=False, markup=False)
    console.print(
        f"card {card.card_cid} (JSON), {card.markdown_cid} (Markdown); "
        f"ledger #{card.ledger_index} model.documented",
        highlight=False,
    )


def policies_cmd(as_json: JsonOpt = False) -> None:
    """The shipped policy packs and their rules."""
    from ledgerml.compliance.packs import available_packs, load_pack

    packs = [load_pack(n) for n in available_packs()]
    if as_json:
        print_json({"packs": [p.to_json() for p in packs]})
        return
    for p in packs:
        console.print(
            f"[bold]{p.id}[/] v{p.version} (on-chain policy {p.policy_id}): {p.description}",
            highlight=False,
        )
        for r in p.rules:
            chain = " \\[chain]" if r.on_chain else ""
            source = r.metric if r.kind == "metric" else f"{r.check} -> {r.metric}"
            console.print(
                f"  {r.id}: {source} {r.comparator} {r.threshold:g}{chain}\n    {r.regulation}",
                highlight=False,
            )


def register(app: typer.Typer) -> None:
    app.command("check")(check_cmd)
    app.command("card")(card_cmd)
    app.command("policies")(policies_cmd)
