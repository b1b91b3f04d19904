"""`ledgerml serve` (the decision service) and `ledgerml score` (a file through the same path).

No logic here: the model and its threshold are what the gate allows (see
`ledgerml.serving.decisions`); `score` hands the file to `ledgerml.serving.batch`, which
validates every row before anything is appended, then scores in batches
through `DecisionService.score` in `sync` mode, so each decision is durable
and the per-decision salts are written to the output file (they are not on
the ledger).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerml.cli._common import as_path, console, print_json, progress_bar, project
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError

#: How `serve --workers N` hands its options to each uvicorn worker process.
_WORKER_ARGS = "LEDGERML_SERVE_WORKER_ARGS"


def worker_app() -> Any:
    """The app of one `serve --workers N` worker (a uvicorn factory): each worker has its
    own ledger writer, coalescing and group commit, on the one shared ledger."""
    from ledgerml.serving.app import create_app

    args = json.loads(os.environ[_WORKER_ARGS])
    return create_app(
        ProjectPaths(Path(args["home"])), mode=args["mode"], max_pending=args["max_pending"]
    )


def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    mode: Annotated[
        str,
        typer.Option("--mode", help="sync: respond after the durable commit; async: queue it."),
    ] = "sync",
    max_pending: Annotated[
        int, typer.Option("--max-pending", help="async: queued requests before 503.")
    ] = 1024,
    anchor_every: Annotated[
        float | None,
        typer.Option(
            "--anchor-every",
            help="Anchor the newest checkpoint on chain every SECONDS in the background "
            "(0 = off; default: [serving] anchor_every_s in config.toml, else off).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes on the one port (uvicorn); all append to the one ledger "
            "([ledger] url: PostgreSQL for several hosts).",
        ),
    ] = 1,
) -> None:
    """Run the decision service (keys: serving.api_keys in config.toml; docs at /docs)."""
    if not 1 <= workers <= 64:
        raise InputError("must be 1..64", field="--workers")
    if workers > 1 and anchor_every:
        raise InputError("anchoring runs in one process: not with --workers > 1", field="--workers")
    if mode not in ("sync", "async"):
        raise InputError("must be sync or async", field="--mode")
    if not 1 <= port <= 65535:
        raise InputError("must be 1..65535", field="--port")
    import uvicorn

    from ledgerml.serving.app import create_app

    if anchor_every is not None and anchor_every < 0:
        raise InputError("must be >= 0 seconds", field="--anchor-every")
    if workers > 1:
        paths = project(ctx)
        paths.require_initialised()
        os.environ[_WORKER_ARGS] = json.dumps(
            {"home": str(paths.home), "mode": mode, "max_pending": max_pending}
        )
        uvicorn.run(
            "ledgerml.cli.serve_cmd:worker_app",
            factory=True,
            host=host,
            port=port,
            log_level="info",
            workers=workers,
        )
        return
    app = create_app(
        project(ctx),
        mode=mode,  # type: ignore[arg-type]
        max_pending=max_pending,
        anchor_every_s=anchor_every,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", workers=1)


def score_cmd(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="CSV or Parquet with the model's feature columns.")],
    alias: Annotated[str, typer.Option("--alias", help="Model alias to score with.")] = "champion",
    out: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--out",
            help="Decisions with salts (JSONL; .csv for CSV). Default FILE.decisions.jsonl.",
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id-column",
            help="Column of FILE carried to the output file next to each decision (not to the "
            "ledger), e.g. TRANSACTION_ID.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Score every row of FILE with the model behind --alias, recording each decision."""
    from ledgerml.serving.batch import (
        id_values,
        read_table,
        score_records,
        table_records,
        write_decisions,
    )
    from ledgerml.serving.decisions import DecisionService

    path = as_path(file)
    out_path = as_path(out) if out else path.with_name(path.name + ".decisions.jsonl")
    table = read_table(path)
    ids = (id_column, id_values(table, id_column)) if id_column else None  # before any append
    with DecisionService.open(project(ctx), mode="sync") as svc:
        model = svc.model_for(alias)  # as the gate (ModelRegistry) holds it, with its threshold
        source = svc.gate.served.get(alias, {}).get("threshold_source")
        # all rows valid before any append
        records = table_records(table, model.model.features, model.model.categories)
        with progress_bar("scoring", len(records), enabled=not as_json) as update:
            made = score_records(svc, alias, records, model, update)
    write_decisions(out_path, made, ids=ids)
    outcomes: dict[str, int] = {}
    for d in made:
        outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
    summary = {
        "file": str(path),
        "alias": alias,
        "model_cid": model.cid,
        "threshold": model.threshold,
        "threshold_source": source,
        "decisions": len(made),
        "outcomes": outcomes,
        "first_index": made[0].index,
        "last_index": made[-1].index,
        "output": str(out_path),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"scored {len(made):,} rows with {alias} ({model.cid}, threshold {model.threshold}: "
            f"{source}); "
            + ", ".join(f"{n:,} {o}" for o, n in sorted(outcomes.items()))
            + f"; ledger indices {made[0].index}..{made[-1].index}; decisions and salts in "
            f"{out_path} (keep it: the salts are not on the ledger)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("score")(score_cmd)
