"""`ledgerml serve` (the decision service) and `ledgerml score` (a file through the same path).

No logic here: `score` reads the file, validates every row with the service's
own validator before anything is appended, then scores in batches through
`DecisionService.score` in `sync` mode, so each decision is durable and the
per-decision salts are written to the output file (they are not on the ledger).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerml.cli._common import as_path, console, print_json, progress_bar, project
from ledgerml.errors import InputError


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
) -> None:
    """Run the decision service (keys: serving.api_keys in config.toml; docs at /docs)."""
    if mode not in ("sync", "async"):
        raise InputError("must be sync or async", field="--mode")
    if not 1 <= port <= 65535:
        raise InputError("must be 1..65535", field="--port")
    import uvicorn

    from ledgerml.serving.app import create_app

    app = create_app(project(ctx), mode=mode, max_pending=max_pending)  # type: ignore[arg-type]
    uvicorn.run(app, host=host, port=port, log_level="info", workers=1)


def _read_table(path: Path) -> Any:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if not path.is_file():
        raise InputError(f"no such file: {path}", field="FILE")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pq.read_table(path)
        return pcsv.read_csv(path)
    except Exception as exc:
        raise InputError(f"cannot read {path.name}: {exc}", field="FILE") from None


def _records(table: Any, features: tuple[str, ...]) -> list[dict[str, float]]:
    """Every row as a feature -> float dict; the first bad cell is named (row, column)."""
    import numpy as np
    import pyarrow as pa

    cols = {}
    for name in features:
        if name not in table.column_names:
            raise InputError("missing feature column", field=name)
        col = table[name]
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise InputError(f"must be numeric, not {col.type}", field=name)
        arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise InputError(
                f"row {int(bad[0])}: empty, NaN or infinite (the model must see real values)",
                field=name,
            )
        cols[name] = arr.tolist()
    return [dict(zip(features, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


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
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Score every row of FILE with the model behind --alias, recording each decision."""
    from ledgerml.serving.decisions import DecisionService
    from ledgerml.serving.scoring import MAX_BATCH, ScoreRequest

    path = as_path(file)
    out_path = as_path(out) if out else path.with_name(path.name + ".decisions.jsonl")
    table = _read_table(path)
    with DecisionService.open(project(ctx), mode="sync") as svc:
        model = svc.model_for(alias)
        records = _records(table, model.model.features)  # all rows valid before any append
        if not records:
            raise InputError("has no rows", field="FILE")
        made = []
        with progress_bar("scoring", len(records), enabled=not as_json) as update:
            for k in range(0, len(records), MAX_BATCH):
                chunk = tuple(records[k : k + MAX_BATCH])
                made += svc.score(ScoreRequest(alias, chunk, True), model)
                update(len(made))
    rows = [{"row": i, **d.to_json()} for i, d in enumerate(made)]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", newline="") as fh:
        if out_path.suffix.lower() == ".csv":
            import csv

            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({**r, "reasons": "; ".join(r["reasons"])})
        else:
            fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    outcomes: dict[str, int] = {}
    for d in made:
        outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
    summary = {
        "file": str(path),
        "alias": alias,
        "model_cid": model.cid,
        "threshold": model.threshold,
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
            f"scored {len(made):,} rows with {alias} ({model.cid}); "
            + ", ".join(f"{n:,} {o}" for o, n in sorted(outcomes.items()))
            + f"; ledger indices {made[0].index}..{made[-1].index}; decisions and salts in "
            f"{out_path} (keep it: the salts are not on the ledger)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("score")(score_cmd)
