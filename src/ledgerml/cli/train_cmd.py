"""`ledgerml train`, `ledgerml evaluate`, `ledgerml explain`: model lifecycle commands.

No logic here: parse, call `ledgerml.mlops.training` / `evaluation`, print.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from ledgerml.cli._common import console, err_console, parse_json, print_json, project
from ledgerml.errors import InputError


@contextmanager
def _stages(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A rich bar on stderr whose description follows the stage (training, scoring, …)."""
    if not enabled or not err_console.is_terminal:
        yield lambda stage, done, total: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=max(total, 1))

        yield update


def _params(text: str | None) -> dict[str, Any] | None:
    """--params as a JSON object (None when not given); anything else names the option."""
    parsed: Any = None if text is None else parse_json(text, field="--params")
    if parsed is not None and not isinstance(parsed, dict):
        raise InputError("must be a JSON object", field="--params")
    return parsed


def _columns(text: str | None) -> list[str]:
    """A comma-separated column list (--drop), blanks left out."""
    return [c.strip() for c in (text or "").split(",") if c.strip()]


def _time_column(value: str) -> str | None:
    return None if value.strip().lower() in ("", "none") else value


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        ctx: typer.Context,
        data: Annotated[str, typer.Option("--data", help="Data set name or CID.")],
        target: Annotated[str, typer.Option("--target", help="0/1 label column.")],
        model: Annotated[str, typer.Option("--model", help="xgboost or logreg.")] = "xgboost",
        params: Annotated[
            str | None, typer.Option("--params", help="JSON object of model parameters.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
        time_column: Annotated[
            str,
            typer.Option("--time-column", help="Column giving time order, or 'none' (row order)."),
        ] = "Time",
        train_fraction: Annotated[
            float, typer.Option("--train-fraction", help="Share of rows (earliest) to train on.")
        ] = 0.8,
        drop: Annotated[
            str | None, typer.Option("--drop", help="Comma-separated columns not to use.")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Model name.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Train on the earliest rows, store the model, record the run on the ledger."""
        from ledgerml.mlops.training import train_model

        paths = project(ctx)
        parsed = _params(params)
        if model not in ("xgboost", "logreg"):
            raise InputError("must be xgboost or logreg", field="--model")
        with _stages(not as_json) as progress:
            res = train_model(
                paths,
                data,
                target,
                model=model,  # type: ignore[arg-type]
                params=parsed,
                seed=seed,
                time_column=_time_column(time_column),
                train_fraction=train_fraction,
                progress=progress,
                drop=_columns(drop),
                name=name,
            )
        if as_json:
            print_json(res.to_json())
            return
        console.print(f"model [bold]{res.model_cid}[/] ({res.framework})", highlight=False)
        console.print(
            f"run {res.run_id}: {res.train_rows:,} training rows, {len(res.features)} features, "
            f"{res.duration_s:.1f}s; ledger entries {res.run_started_index}, "
            f"{res.run_finished_index}, {res.model_registered_index}",
            highlight=False,
        )

    @app.command("evaluate")
    def evaluate(
        ctx: typer.Context,
        model_cid: Annotated[str, typer.Argument(metavar="MODEL_CID", help="Model CID.")],
        data: Annotated[
            str | None,
            typer.Option("--data", help="Data set (default: held-out tail of the training data)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Model vs logreg and rules baselines on held-out data; records `evaluation.recorded`."""
        from ledgerml.mlops.evaluation import evaluate_model

        paths = project(ctx)
        with _stages(not as_json) as progress:
            res = evaluate_model(paths, model_cid, data, progress=progress)
        if as_json:
            print_json(res.to_json())
            return
        from rich.table import Table

        table = Table(title=f"{res.split} — {res.rows:,} rows, {res.positives:,} positives")
        table.add_column("metric")
        for col in ("model", "logreg", "rules"):
            table.add_column(col, justify="right")
        for key in res.metrics:
            vals = [res.metrics[key], res.baselines["logreg"][key], res.baselines["rules"][key]]
            table.add_row(
                key, *(f"{v:,.0f}" if key.startswith("fp_at") else f"{v:.4f}" for v in vals)
            )
        console.print(table)
        console.print(f"rules baseline: {res.rules}", highlight=False)
        for name, cid in res.plots.items():
            console.print(f"plot {name}: {cid}", highlight=False)
        console.print(f"ledger index {res.ledger_index}", highlight=False)

    @app.command("log-model")
    def log_model(
        ctx: typer.Context,
        path: Annotated[
            str, typer.Argument(metavar="PATH", help=".skops, .onnx, LightGBM .txt, XGBoost .ubj")
        ],
        data: Annotated[
            list[str], typer.Option("--data", help="Training data set(s), first = train.")
        ],
        target: Annotated[str, typer.Option("--target", help="The 0/1 label column.")],
        feature: Annotated[
            list[str] | None,
            typer.Option("--feature", help="A model input, in column order (default: all others)."),
        ] = None,
        time_column: Annotated[
            str, typer.Option("--time-column", help="Column ordering the rows; 'none' for none.")
        ] = "Time",
        train_fraction: Annotated[float, typer.Option("--train-fraction")] = 0.8,
        params: Annotated[
            str | None, typer.Option("--params", help="The run's parameters, as JSON.")
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Model name.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Record a model trained elsewhere: its run, the file in the CAS, `model.registered`.

        The file is read without running code (never pickle); a file LedgerML cannot read
        safely is refused (exit 2) naming it, and nothing is appended."""
        from ledgerml.api import Project

        paths = project(ctx)
        tcol = _time_column(time_column)
        feats = list(feature) if feature else None
        p = _params(params or None) or {}
        front = Project(paths)
        with front.start_run(
            data=data, params=p, time_column=tcol, train_fraction=train_fraction
        ) as run:
            res = run.log_model(path, features=feats, target=target, name=name)
        if as_json:
            print_json(res.to_json())
            return
        console.print(
            f"model {res.cid} ({res.framework}), run {res.run_id}; reasons by "
            f"{res.explanation}; ledger index {res.ledger_index}",
            highlight=False,
        )

    @app.command("explain")
    def explain(
        ctx: typer.Context,
        model_cid: Annotated[str, typer.Argument(metavar="MODEL_CID", help="Model CID.")],
        data: Annotated[str, typer.Option("--data", help="Data set name or CID.")],
        row: Annotated[
            int, typer.Option("--row", help="Row number in the stored table (0-based).")
        ],
        top: Annotated[int, typer.Option("--top", help="How many reasons.")] = 3,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Top reasons (TreeSHAP) that pushed one row's score up."""
        from ledgerml.mlops.training import load_model, load_table, resolve_dataset

        paths = project(ctx)
        if top < 1:
            raise InputError("must be at least 1", field="--top")
        record = resolve_dataset(paths, data)
        if not 0 <= row < record.rows:
            raise InputError(f"must be from 0 to {record.rows - 1}", field="--row")
        model = load_model(paths, model_cid)
        table = load_table(paths, record.cid).slice(row, 1)
        score = float(model.predict_proba(table)[0])
        reasons = model.explain(table, top=top)[0]
        if as_json:
            print_json(
                {
                    "model_cid": model_cid,
                    "dataset_cid": record.cid,
                    "row": row,
                    "score": score,
                    "reasons": [r.to_json() for r in reasons],
                }
            )
            return
        console.print(f"row {row}: score {score:.4f}", highlight=False)
        if not reasons:
            console.print("no feature pushed the score up", highlight=False)
        for i, r in enumerate(reasons, 1):
            console.print(f"{i}. {r.text}", highlight=False)
