"""Model formats behind one protocol: XGBoost, logistic, LightGBM, scikit-learn (skops), ONNX.

Why: a bank's data scientists train with whatever fits; LedgerML governs, explains and
serves the result as long as it can read the file *without running its code*. Never
pickle: each format loads from a format that describes data, not code.

    from ledgerml.mlops import models

    raw, fmt = models.dump(fitted, features=cols, reference=ref)   # deterministic bytes
    model = models.load(cid, raw, source="model.onnx")  # format recognised from the bytes
    model.predict_proba(rows); model.contributions(x); model.explain(rows, top=3)
    models.detect(raw, source="f.skops")                # "sklearn", or InputError naming it
    models.get("lightgbm").explanation                  # how reasons are computed

A format is an object with `name`, `explanation`, `sniff`, `accepts`, `dump`, `load` and
`framework` (see `ModelFormat`); `register(fmt)` adds one (e.g. MLflow flavours, issue 16).
XGBoost and logistic models load through `models.xgboost.native_model` into its
`LoadedModel`; `ledgerml.mlops.fitting` fits them (and imports this package, never the
other way round).
"""

from __future__ import annotations

from typing import Any

from ledgerml.errors import InputError
from ledgerml.mlops.models._base import (
    META_KEY,
    OCCLUSION,
    Model,
    ModelFormat,
    as_matrix,
    read_file,
    refused,
)
from ledgerml.mlops.models.lightgbm import LightGBMFormat
from ledgerml.mlops.models.onnx import OnnxFormat
from ledgerml.mlops.models.sklearn import SklearnFormat
from ledgerml.mlops.models.xgboost import LogregFormat, XGBoostFormat

#: Registered formats, tried in this order (sniffing is by magic bytes, so order is safe).
_FORMATS: dict[str, ModelFormat] = {}


def register(fmt: ModelFormat) -> None:
    """Add (or replace) a format by its `name`."""
    _FORMATS[fmt.name] = fmt


for _fmt in (LogregFormat(), XGBoostFormat(), LightGBMFormat(), SklearnFormat(), OnnxFormat()):
    register(_fmt)


def names() -> tuple[str, ...]:
    return tuple(_FORMATS)


def get(name: str) -> ModelFormat:
    fmt = _FORMATS.get(name)
    if fmt is None:
        raise InputError(
            f"unknown model format {name!r} (known: {', '.join(_FORMATS)})", field="model_type"
        )
    return fmt


def detect(raw: bytes, *, source: str) -> str:
    """The format name of `raw`, or an `InputError` naming `source` (a pickle, a blob …)."""
    if raw[:1] == b"\x80" or raw[:2] in (b"(d", b"(l", b"cc"):
        raise refused(source, "a Python pickle")
    for fmt in _FORMATS.values():
        if fmt.sniff(raw):
            return fmt.name
    known = ", ".join(_FORMATS)
    raise refused(source, f"not a model file of a known format ({known})")


def load(cid: str, raw: bytes, *, source: str | None = None) -> Any:
    """A scoring model from stored bytes; `InputError` naming `source` (default: the CID)."""
    where = source or cid
    return get(detect(raw, source=where)).load(cid, raw, source=where)


def format_of(obj: Any) -> ModelFormat:
    """The format that can store the in-memory model `obj` (`InputError` on `model` if none)."""
    for fmt in _FORMATS.values():
        if fmt.accepts(obj):
            return fmt
    raise InputError(
        f"cannot store a {type(obj).__module__}.{type(obj).__name__}: pass a LightGBM, "
        "XGBoost or scikit-learn model, an onnx.ModelProto, or a path to a .skops, .onnx, "
        "LightGBM .txt or XGBoost .ubj file",
        field="model",
    )


def dump(obj: Any, *, features: list[str], reference: dict[str, Any]) -> tuple[bytes, str]:
    """Deterministic bytes of `obj` with LedgerML's metadata inside, and the format name."""
    fmt = format_of(obj)
    return fmt.dump(obj, features=features, reference=reference), fmt.name


def explanation_of(model: Any) -> str:
    """How `model`'s reason codes are computed (for checks and model cards)."""
    own = getattr(model, "explanation", None)
    if isinstance(own, str):
        return own
    fmt = _FORMATS.get(str(getattr(model, "model_type", "")))
    return fmt.explanation if fmt else "unknown"


__all__ = [
    "META_KEY",
    "OCCLUSION",
    "Model",
    "ModelFormat",
    "as_matrix",
    "detect",
    "dump",
    "explanation_of",
    "format_of",
    "get",
    "load",
    "names",
    "read_file",
    "refused",
    "register",
]
