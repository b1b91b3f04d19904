"""The rows a model learns from: a registered data set, loaded, checked and split in time order.

Why a module of its own: training, evaluation, backtests, monitoring and the compliance
screen all rebuild the same matrix from the same stored Parquet, so they share one
`prepare`: the split is evidence (`run.started` records it) and anyone must be able to
derive it again. Rows are sorted (stable) by the time column and the first
`train_fraction` train: never the future into training.

Usage::

    record = resolve_dataset(paths, "card-transactions")   # by name or CID
    table = load_table(paths, record.cid)                   # re-hashed on read
    prep = prepare(table, "Class", "Time", 0.8)             # InputError naming the field
    prep.x[: prep.split.train_rows], prep.split.to_json()   # the training window, the split
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError
from ledgerml.mlops.datasets import DatasetRecord, iter_datasets
from ledgerml.mlops.models._base import Categories, categories_in, column_array, is_text
from ledgerml.storage import open_store

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa


def resolve_dataset(paths: ProjectPaths, data: str, *, field: str = "--data") -> DatasetRecord:
    """A registered data set by CID or by name (the latest registration of that name)."""
    if not isinstance(data, str) or not data.strip():
        raise InputError("name or CID of a registered data set required", field=field)
    found: DatasetRecord | None = None
    names: list[str] = []
    for rec in iter_datasets(paths):
        if rec.cid == data:
            return rec
        if rec.name == data:
            found = rec
        if rec.name not in names:
            names.append(rec.name)
    if found is None:
        known = ", ".join(names[:10]) or "none registered; use `ledgerml data add`"
        raise InputError(f"no registered data set {data!r} (known: {known})", field=field)
    return found


def load_table(paths: ProjectPaths, cid: str) -> pa.Table:
    """The stored Parquet of a data set, re-hashed on read."""
    from ledgerml.tables import read_parquet

    return read_parquet(open_store(paths).read_bytes(cid))


def _is_numeric(dtype: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)
    )


def _is_temporal(dtype: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_timestamp(dtype) or pa.types.is_date(dtype))


@dataclass(frozen=True)
class Split:
    """A time-ordered split: rows sorted (stable) by `time_column`, the first `train_rows` train."""

    time_column: str | None
    train_fraction: float
    train_rows: int
    test_rows: int
    boundary: float | None  # time of the first held-out row

    def to_json(self) -> dict[str, Any]:
        return {
            "time_column": self.time_column,
            "train_fraction": self.train_fraction,
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "boundary": self.boundary,
            "order": f"stable sort by {self.time_column}" if self.time_column else "row order",
        }


def time_order(table: pa.Table, time_column: str | None) -> np.ndarray:
    import numpy as np

    if time_column is None:
        return np.arange(table.num_rows)
    return np.argsort(column_array(table, time_column), kind="stable")


@dataclass(frozen=True)
class Prepared:
    """Feature matrix and labels in time order, with the split."""

    features: tuple[tuple[str, str], ...]
    x: Any  # np.ndarray float64 (rows, features), time-ordered
    y: Any  # np.ndarray float64 0/1
    split: Split
    #: Text features: their categories, taken from the training window only (code = index).
    categories: Categories = field(default_factory=dict, hash=False)

    def meta(self) -> dict[str, Any]:
        """The categories as a model file's metadata stores them (nothing if there are none)."""
        if not self.categories:
            return {}
        return {"categories": {k: list(v) for k, v in self.categories.items()}}


def prepare(
    table: pa.Table,
    target: str,
    time_column: str | None,
    train_fraction: float,
    drop: Sequence[str] = (),
) -> Prepared:
    """Validate the columns and build the time-ordered matrix; `InputError` naming the field."""
    import numpy as np

    names = table.column_names
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    if not isinstance(target, str) or target not in names:
        raise InputError(
            f"no column {target!r} in the data set (columns: {shown})", field="--target"
        )
    if time_column is not None and time_column not in names:
        raise InputError(
            f"no column {time_column!r} to order the rows by (columns: {shown}); name the "
            "time column, or pass none to keep the stored row order",
            field="--time-column",
        )
    for col in drop:
        if col not in names:
            raise InputError(
                f"no column {col!r} in the data set (columns: {shown})", field="--drop"
            )
    if time_column == target:
        raise InputError("the target cannot be the time column", field="--time-column")
    if not _is_numeric(table.schema.field(target).type):
        raise InputError(
            f"target {target!r} is {table.schema.field(target).type}, not 0/1", field="--target"
        )
    time_type = None if time_column is None else table.schema.field(time_column).type
    if time_type is not None and not (_is_numeric(time_type) or _is_temporal(time_type)):
        raise InputError(
            f"time column {time_column!r} is {time_type}, not a number, date or timestamp",
            field="--time-column",
        )
    excluded = {target, *drop} | ({time_column} if time_column else set())
    feats = [(f.name, str(f.type)) for f in table.schema if f.name not in excluded]
    bad = [
        f"{f.name} ({f.type})"
        for f in table.schema
        if f.name not in excluded
        and not (_is_numeric(f.type) or _is_temporal(f.type) or is_text(f.type))
    ]
    if bad:
        raise InputError(
            f"non-numeric feature column(s) the model cannot take: {', '.join(bad)}; "
            "drop them (--drop) or encode them as numbers before registering",
            field="--data",
        )
    if not feats:
        raise InputError("no feature columns left", field="--data")
    if not isinstance(train_fraction, float | int) or not 0.05 <= float(train_fraction) <= 0.95:
        raise InputError("must be a number from 0.05 to 0.95", field="train_fraction")

    y = column_array(table, target)
    if np.isnan(y).any():
        raise InputError(f"target {target!r} has missing values", field="--target")
    values = set(np.unique(y).tolist())
    if not values <= {0.0, 1.0}:
        shown_v = ", ".join(f"{v:g}" for v in sorted(values)[:5])
        raise InputError(f"target {target!r} must be 0/1, found {shown_v}", field="--target")
    order = time_order(table, time_column)
    y = y[order]
    n = len(y)
    cut = int(n * float(train_fraction))
    if cut < 10 or n - cut < 10:
        raise InputError(f"{n} rows are too few to split", field="--data")
    # text features become categories, learnt from the training window alone: a value first
    # seen later is unknown to the model (NaN), as it would be in production
    categories = {
        name: categories_in(table.column(name).take(order[:cut]).to_pylist(), name=name)
        for name, _ in feats
        if is_text(table.schema.field(name).type)
    }
    x = np.column_stack(
        [column_array(table, name, categories.get(name))[order] for name, _ in feats]
    )
    if not (0 < y[:cut].sum() < cut):
        raise InputError(
            f"the training window (first {cut} rows) needs both classes of {target!r}",
            field="--target",
        )
    boundary = None
    if time_column is not None:
        boundary = float(column_array(table, time_column)[order[cut]])
    split = Split(time_column, float(train_fraction), cut, n - cut, boundary)
    return Prepared(tuple(feats), x, y, split, categories)
