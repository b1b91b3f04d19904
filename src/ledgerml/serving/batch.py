"""Scoring a whole table through the service's own path (`ledgerml score`, the demo).

Every row is validated before anything is appended; then rows go through
`DecisionService.score` in batches of `MAX_BATCH`, so a file gets exactly the
decisions, commitments and reason codes the HTTP API would have given. The
salts come back with the decisions and are written to the caller's file:
they are not on the ledger.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledgerml.crypto.files import open_private
from ledgerml.errors import InputError
from ledgerml.serving.decisions import Decision, DecisionService, ModelEntry
from ledgerml.serving.scoring import (
    MAX_ABS_FEATURE,
    MAX_BATCH,
    Categories,
    FeatureValue,
    ScoreRequest,
)


def read_table(path: Path) -> Any:
    """A CSV or Parquet file as a pyarrow Table; unreadable files name `FILE`."""
    import pyarrow.csv as pcsv

    from ledgerml.tables import read_parquet

    if not path.is_file():
        raise InputError(f"no such file: {path}", field="FILE")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return read_parquet(path)
        return pcsv.read_csv(path)
    except Exception as exc:
        raise InputError(f"cannot read {path.name}: {exc}", field="FILE") from None


def table_records(
    table: Any, features: Sequence[str], categories: Categories | None = None
) -> list[dict[str, FeatureValue]]:
    """Every row as a feature -> value dict (floats; a category feature's text as written);
    the first bad cell is named (row, column), its value never shown."""
    import numpy as np
    import pyarrow as pa

    cats = categories or {}
    cols: dict[str, list[Any]] = {}
    for name in features:
        if name not in table.column_names:
            raise InputError("missing feature column", field=name)
        col = table[name]
        if name in cats:
            known = set(cats[name])
            texts = col.to_pylist()
            bad_rows = [i for i, v in enumerate(texts) if not isinstance(v, str) or v not in known]
            if bad_rows:
                raise InputError(
                    f"row {bad_rows[0]}: empty, not text, or not one of the "
                    f"{len(known)} categories the model was trained on",
                    field=name,
                )
            cols[name] = texts
            continue
        if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
            from ledgerml.mlops.training import column_array

            arr = column_array(table, name)  # seconds since the epoch, as in training
        elif not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            raise InputError(f"must be numeric, not {col.type}", field=name)
        else:
            arr = col.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(arr) | (np.abs(arr) > MAX_ABS_FEATURE))
        if len(bad):
            raise InputError(
                f"row {int(bad[0])}: empty, NaN, infinite or beyond ±{MAX_ABS_FEATURE:.8g} "
                "(the model must see real values, in 32-bit float range)",
                field=name,
            )
        cols[name] = arr.tolist()
    return [dict(zip(features, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


def score_records(
    svc: DecisionService,
    alias: str,
    records: Sequence[dict[str, FeatureValue]],
    model: ModelEntry,
    progress: Callable[[int], None] | None = None,
) -> list[Decision]:
    """Score and record every record, `MAX_BATCH` at a time; decisions in input order."""
    if not records:
        raise InputError("has no rows", field="FILE")
    made: list[Decision] = []
    for k in range(0, len(records), MAX_BATCH):
        made += svc.score(ScoreRequest(alias, tuple(records[k : k + MAX_BATCH]), True), model)
        if progress is not None:
            progress(len(made))
    return made


def id_values(table: Any, column: str) -> list[str]:
    """The table's own row ids (e.g. TRANSACTION_ID) as text, for the caller's output file only:
    they are never sent to the ledger. Missing ids are refused (row named, no value shown)."""
    if column not in table.column_names:
        raise InputError("no such column in the file", field="--id-column")
    values = table[column].to_pylist()
    for row, v in enumerate(values):
        if v is None or str(v) == "":
            raise InputError(f"row {row}: empty id", field="--id-column")
    return [str(v) for v in values]


def write_decisions(
    path: Path, decisions: Sequence[Decision], *, ids: tuple[str, Sequence[str]] | None = None
) -> None:
    """The decisions with their salts: JSON lines, or CSV when `path` ends in .csv; with `ids`
    (column name, values) each row also carries the table's own id under that name."""
    rows = [{"row": i, **d.to_json()} for i, d in enumerate(decisions)]
    if ids is not None:
        name, values = ids
        rows = [{name: v, **r} for v, r in zip(values, rows, strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_private(path, newline="") as fh:  # 0600: the salts open the commitments
        if path.suffix.lower() == ".csv":
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            for r in rows:
                w.writerow({**r, "reasons": "; ".join(r["reasons"])})
        else:
            fh.writelines(json.dumps(r, sort_keys=True) + "\n" for r in rows)
