"""`ledgerml fl run`: federated anti-money-laundering across banks, every round on the ledger.

No logic here: parse, call `ledgerml.federated.run_federated`, print. Progress per round
goes to stderr; the comparison (federated vs each bank alone vs centralized, on the same
held-out transactions) to stdout. Exit 2 on bad input, with nothing recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerml.cli._common import EXIT_VERIFY, console, err_console, print_json, project

app = typer.Typer(help="Federated learning across banks (Flower), every round on the ledger.")


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def run_cmd(
    ctx: typer.Context,
    banks: Annotated[
        int | None,
        typer.Option("--banks", help="Number of banks (generator: default 5; --data: checked)."),
    ] = None,
    rounds: Annotated[int, typer.Option("--rounds", help="Federated rounds.")] = 10,
    poison: Annotated[
        str | None, typer.Option("--poison", help="Bank that sends poisoned updates, e.g. B3.")
    ] = None,
    poison_mode: Annotated[
        str, typer.Option("--poison-mode", help="flip (labels) or scale (update x10).")
    ] = "flip",
    forge: Annotated[
        str | None,
        typer.Option("--forge", help="Bank whose updates are signed by a wrong key (a test)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Transaction table (CSV or Parquet); see docs/federated.md."),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="simulation (in-process) or deployment (processes).")
    ] = "simulation",
    strategy: Annotated[
        str, typer.Option("--strategy", help="xgboost (trust-weighted bagging) or linear (FedAvg).")
    ] = "xgboost",
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 7,
    anchor: Annotated[
        bool,
        typer.Option("--anchor", help="Anchor the ledger checkpoint (all rounds) on chain."),
    ] = False,
    column_map: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Schema column = your column, comma-separated, for --data "
            "(e.g. src_account=from_acct,dst_account=to_acct).",
        ),
    ] = None,
    witnesses: Annotated[
        bool,
        typer.Option(
            "--witnesses",
            help="Run a witness per bank and the auditor on 127.0.0.1 and publish the log's "
            "checkpoint only with a majority of the banks' cosignatures (docs/witnesses.md).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Train an AML model across banks with Flower; compare with local-only and centralized."""
    from ledgerml.datasets.aml import parse_column_map
    from ledgerml.federated import FlOptions, run_federated

    mapping = parse_column_map(column_map)
    opts = FlOptions(
        banks=banks,
        rounds=rounds,
        poison=poison,
        poison_mode=poison_mode,  # type: ignore[arg-type]
        forge=forge,
        data=data,
        mode=mode,  # type: ignore[arg-type]
        strategy=strategy,  # type: ignore[arg-type]
        seed=seed,
        anchor=anchor,
        columns=tuple(sorted(mapping.items())),
    )

    paths = project(ctx)
    cosigning = None
    if witnesses:  # each bank's witness cosigns the shared log, round by round (issue 13)
        from ledgerml.witness.consortium import RoundWitnessing

        cosigning = RoundWitnessing(paths)

    def progress(info: dict[str, Any]) -> None:
        trust = " ".join(f"{b}={t:.2f}" for b, t in info["trust"].items())
        rejected = f"  rejected: {', '.join(info['rejected'])}" if info["rejected"] else ""
        err_console.print(
            f"round {info['round']}/{rounds}  {info['seconds']:.1f}s  trust {trust}{rejected}",
            highlight=False,
        )
        if cosigning is not None:
            done = cosigning.publish(sorted(info["trust"]))
            who = ", ".join(done.cosigners) or "none"
            verdict = "cosigned" if done.published else "NOT published"
            err_console.print(f"  checkpoint {done.size}: {verdict} ({who})", highlight=False)

    witnessed = None
    try:
        result = run_federated(paths, opts, progress=progress)
        if cosigning is not None:  # the run's last entries too
            witnessed = cosigning.publish(
                sorted(result.rounds[-1]["trust"] if result.rounds else [])
            )
    finally:
        if cosigning is not None:
            cosigning.close()
    if as_json:
        extra = {"witnesses": witnessed.to_json()} if witnessed is not None else {}
        print_json(result.to_json() | extra)
        if witnessed is not None and not witnessed.published:
            raise typer.Exit(EXIT_VERIFY)
        return
    from rich.table import Table

    comp = result.comparison
    ts = comp["test_set"]
    table = Table(
        title=f"held-out: {ts['transactions']:,} transactions ({ts['laundering']} laundering), "
        f"{ts['from'][:10]} .. {ts['to'][:10]}"
    )
    for col in ("model", "recall @ 1% FPR", "AUPRC"):
        table.add_column(col)
    table.add_row(
        "[bold]federated[/]",
        _fmt(comp["federated"]["recall_at_1pct_fpr"]),
        _fmt(comp["federated"]["auprc"]),
    )
    for bank, m in comp["local"].items():
        table.add_row(f"{bank} alone", _fmt(m["recall_at_1pct_fpr"]), _fmt(m["auprc"]))
    table.add_row(
        "mean of banks alone",
        _fmt(comp["local_mean"]["recall_at_1pct_fpr"]),
        _fmt(comp["local_mean"]["auprc"]),
    )
    table.add_row(
        "centralized (pooled; not a bound)",
        _fmt(comp["centralized"]["recall_at_1pct_fpr"]),
        _fmt(comp["centralized"]["auprc"]),
    )
    trees = comp["trees"]
    for key, label in (
        ("centralized_same_budget", "centralized, federated tree budget (bagged shards)"),
        ("pooled_bank_views", "banks' own views pooled, one model"),
        ("pooled_bank_views_sender_only", "  the same, sender's bank's view only"),
    ):
        table.add_row(label, _fmt(comp[key]["recall_at_1pct_fpr"]), _fmt(comp[key]["auprc"]))
    console.print(table)
    imp = comp["improvement_vs_local_mean"]
    console.print(
        f"federated vs mean local: recall {imp['recall_at_1pct_fpr']:+.0%}, "
        f"AUPRC {imp['auprc']:+.0%}",
        highlight=False,
    )
    if any(trees.values()):
        console.print(
            "trees: " + ", ".join(f"{k} {n}" for k, n in trees.items() if n is not None),
            highlight=False,
        )
    sf = comp["simple_features"]
    console.print(
        f"label leakage check: amount alone AUPRC {sf['amount_auprc']:.4f}, best single "
        f"feature {sf['best_single_feature']} {sf['best_single_feature_auprc']:.4f} "
        f"(base rate {sf['base_rate']:.4f})",
        highlight=False,
    )
    last = result.rounds[-1]
    console.print(
        "final trust: " + ", ".join(f"{b} {t:.2f}" for b, t in last["trust"].items()),
        highlight=False,
    )
    console.print(
        f"model {result.model_cid}; {result.mode}, {len(result.rounds)} rounds in "
        f"{result.seconds['rounds_total']:.1f}s ({result.seconds['per_round_mean']:.2f}s/round), "
        f"total {result.seconds['total']:.1f}s",
        highlight=False,
    )
    if witnessed is not None:
        for line in witnessed.lines():
            (console if witnessed.published else err_console).print(line, highlight=False)
        if not witnessed.published:
            raise typer.Exit(EXIT_VERIFY)
    if result.anchor is not None:
        console.print(
            f"anchored: tree size {result.anchor['tree_size']} in tx {result.anchor['tx_hash']}",
            highlight=False,
        )
    console.print(
        f"ledger: fl.round #{result.rounds[0]['ledger_index']}..#{last['ledger_index']}"
        + "".join(f", {t} #{i}" for i, t in result.entries),
        highlight=False,
    )


def register(root: typer.Typer) -> None:
    app.command("run")(run_cmd)
    root.add_typer(app, name="fl")
