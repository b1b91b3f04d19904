"""How MLflow's values become ledger bodies: digests an auditor can recompute from the database.

No mlflow import here: `ledgerml mlflow verify` uses the same functions on rows it reads with
`sqlite3`, so the writer (inside `mlflow server`) and the checker cannot drift apart.

- A param or tag value is recorded as SHA-256 of its UTF-8 bytes (values may be personal:
  `mlflow.user`, file paths), never the value.
- Metric points are many, so a `log_batch` records per metric key the number of points and
  an additive multiset hash: each point `key \\t step \\t timestamp \\t is_nan \\t value.hex()`
  is hashed with SHAKE-256 to 256 bytes, read as an integer, and the integers are summed
  mod 2**2048 (LtHash-like). Sums of all batches of a run equal the sum over the run's rows
  in the database, whatever the order or batching, and a changed, added or removed point
  changes it (a collision needs a 2048-bit generalized-birthday search).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: MLmodel flavours whose model file LedgerML can load, and the MLmodel key naming it
#: (scikit-learn only as skops, MLflow's default serialization; never a pickle).
FLAVOUR_FILES = {"xgboost": "data", "lightgbm": "data", "sklearn": "pickled_model"}


def loadable_flavours(mlmodel: bytes) -> list[list[str]]:
    """[flavour, the file its MLmodel names] for each flavour LedgerML can load, in
    `FLAVOUR_FILES` order, from an MLmodel file's bytes. Raises on YAML that does not parse.

    The artifact repository records this with the MLmodel's CID when the file is stored, so
    registering a version needs no read of the CAS; anyone can recompute it from those bytes.
    """
    import yaml

    # libyaml's safe loader when PyYAML has it (its wheels do): 10x the pure-Python one
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(mlmodel, Loader=loader)
    flavors = spec.get("flavors") if isinstance(spec, dict) else None
    out = []
    for flavour, key in FLAVOUR_FILES.items():
        conf = flavors.get(flavour) if isinstance(flavors, dict) else None
        if not isinstance(conf, dict):
            continue
        if flavour == "sklearn" and conf.get("serialization_format") != "skops":
            continue  # a pickle: LedgerML never loads one, so it names no model CID
        name = conf.get(key)
        if isinstance(name, str):
            out.append([flavour, name])
    return out


#: Every entry type this package writes (all reserved to it, see ledger/events.py).
TYPES = (
    "mlflow.experiment",
    "mlflow.run_created",
    "mlflow.run_updated",
    "mlflow.run_deleted",
    "mlflow.run_restored",
    "mlflow.batch_logged",
    "mlflow.tag_deleted",
    "mlflow.inputs_logged",
    "mlflow.outputs_logged",
    "mlflow.logged_model",
    "mlflow.artifact_stored",
    "mlflow.registered_model",
    "mlflow.model_version",
    "mlflow.model_version_tag",
    "mlflow.alias",
    "mlflow.stage",
)

_MOD_BITS = 2048
_MOD = 1 << _MOD_BITS


def value_digest(value: str | None) -> str | None:
    """SHA-256 hex of a param or tag value (None stays None)."""
    return None if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()


def item_digests(items: Iterable[Any] | None) -> dict[str, str | None]:
    """key -> `value_digest(value)` of MLflow params or tags (anything with .key and .value)."""
    return {i.key: value_digest(i.value) for i in items or ()}


def _point_int(key: str, step: int, timestamp: int, is_nan: bool, value: float) -> int:
    text = f"{key}\t{int(step)}\t{int(timestamp)}\t{int(bool(is_nan))}\t{float(value).hex()}"
    return int.from_bytes(hashlib.shake_256(text.encode("utf-8")).digest(_MOD_BITS // 8), "big")


@dataclass(frozen=True)
class PointSum:
    """Points of one metric key: how many, and their additive multiset hash (hex)."""

    count: int
    sum: str

    def to_json(self) -> list[int | str]:
        return [self.count, self.sum]


def metric_sums(points: Iterable[tuple[str, int, int, bool, float]]) -> dict[str, PointSum]:
    """Per key: count and sum of (key, step, timestamp, is_nan, value) points.

    Duplicates within one call count once, as MLflow stores a point once.
    """
    acc: dict[str, list[int]] = {}
    for point in set(points):
        slot = acc.setdefault(point[0], [0, 0])
        slot[0] += 1
        slot[1] = (slot[1] + _point_int(*point)) % _MOD
    return {k: PointSum(c, f"{s:0{_MOD_BITS // 4}x}") for k, (c, s) in sorted(acc.items())}


def add_sums(a: PointSum | None, b: PointSum) -> PointSum:
    if a is None:
        return b
    total = (int(a.sum, 16) + int(b.sum, 16)) % _MOD
    return PointSum(a.count + b.count, f"{total:0{_MOD_BITS // 4}x}")
