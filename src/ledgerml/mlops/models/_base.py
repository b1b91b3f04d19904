"""What every model format shares: the scoring surface, the feature matrix, safe sniffing.

Why one surface: evaluation, checks, monitoring and the decision service call only
`features`, `reference`, `predict_proba`, `contributions` and `explain`; a format module
has to supply probabilities and, if it can, native contributions — nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ledgerml.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from ledgerml.mlops.explain import Reason

#: Key of LedgerML's own metadata inside a model file (features, training reference).
META_KEY = "ledgerml"
#: The model-agnostic contribution method, named in checks and model cards.
OCCLUSION = (
    "occlusion against the training median: each feature's contribution is the change in "
    "log-odds when that feature alone is set to its training-window median"
)
_EPS = 1e-12
#: Key, inside LedgerML's metadata, of an XGBoost model's linear base (`linear_base`).
LINEAR_BASE_KEY = "linear_base"


def linear_terms(base: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """Per-feature log-odds of a linear base (rows, features): coefficient x standardised
    value, a missing value counting as the training mean (0). Training and scoring both
    call this, so a served score is the trained one."""
    import numpy as np

    z = (x - np.asarray(base["mean"], dtype=np.float64)) / np.asarray(base["scale"], np.float64)
    return np.nan_to_num(z) * np.asarray(base["coef"], dtype=np.float64)


def linear_margin(base: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    """A linear base's log-odds per row: its terms plus the intercept (training and scoring)."""
    return linear_terms(base, x).sum(axis=1) + float(base["intercept"])


class ModelFormat(Protocol):
    """One model format: recognise bytes, load them without running code, serialise objects."""

    name: str
    #: How per-feature contributions are computed ("native: …" or the model-agnostic method).
    explanation: str

    def sniff(self, raw: bytes) -> bool:
        """True if `raw` looks like this format (cheap; no parsing of untrusted content)."""
        ...

    def accepts(self, obj: Any) -> bool:
        """True if `obj` is an in-memory model this format can serialise."""
        ...

    def dump(self, obj: Any, *, features: list[str], reference: dict[str, Any]) -> bytes:
        """Deterministic bytes of `obj` with LedgerML's metadata inside (same model, same CID)."""
        ...

    def load(self, cid: str, raw: bytes, *, source: str) -> Any:
        """A scoring model from `raw`; `InputError` naming `source` if it cannot be read safely."""
        ...

    def framework(self) -> str:
        """Library and version, as recorded in `model.registered`."""
        ...


#: Seconds per unit of a pyarrow timestamp.
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}

#: A text column with at most this many distinct values in the training window is a
#: category feature; more looks like an identifier or free text and is refused.
MAX_CATEGORIES = 64

#: Feature name -> its categories in code order (sorted); the code of a value is its index.
Categories = Mapping[str, tuple[str, ...]]


def is_text(dtype: Any) -> bool:
    """A string column (plain, large or dictionary-encoded strings): a candidate category."""
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))


def category_codes(values: Any, categories: tuple[str, ...]) -> np.ndarray:
    """Each value's code: its index in `categories` (sorted), as float64; a value not among
    them (or null) is NaN — a tree model's "missing", and refused by the decision service.

    Why an index into a sorted list: it is deterministic (no hash seed, no first-seen
    order), stored inside the model file (so the CID covers it) and applied by the same
    function in training, evaluation, monitoring, batch scoring and the HTTP service."""
    import numpy as np

    index = {c: float(i) for i, c in enumerate(categories)}
    return np.array([index.get(v, np.nan) if isinstance(v, str) else np.nan for v in values])


def categories_in(values: Any, *, name: str) -> tuple[str, ...]:
    """The sorted distinct non-null values of a text column's training rows; too many (an
    identifier or free text) or none is an `InputError` naming the column, showing no value."""
    found = sorted({v for v in values if isinstance(v, str)})
    if not found:
        raise InputError(
            f"text column {name!r} has no values in the training window; drop it (--drop)",
            field="--data",
        )
    if len(found) > MAX_CATEGORIES:
        raise InputError(
            f"text column {name!r} has {len(found):,} distinct values in the training window "
            f"(at most {MAX_CATEGORIES} make a category feature; more look like an identifier "
            "or free text): drop it (--drop) or encode it as numbers before registering",
            field="--data",
        )
    return tuple(found)


def column_array(
    table: pa.Table, name: str, categories: tuple[str, ...] | None = None
) -> np.ndarray:
    """A numeric column as float64 with nulls as NaN; a date/timestamp column as seconds since
    the Unix epoch (UTC; a naive timestamp is read as UTC) — the documented numeric encoding
    of datetime columns, for ordering rows and as a feature; a text column as the codes of
    `categories` (`category_codes`)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(name)
    if is_text(col.type):
        if categories is None:
            raise InputError(f"is {col.type}, and the model has no categories for it", field=name)
        return category_codes(col.to_pylist(), categories)
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    elif pa.types.is_date(col.type):
        days = pc.cast(pc.cast(col, pa.date32()), pa.int32())
        return np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.float64) * 86400.0
    elif pa.types.is_timestamp(col.type):
        raw = pc.cast(col, pa.int64())
        scale = _UNIT_SECONDS[col.type.unit]
        return np.asarray(raw.to_numpy(zero_copy_only=False), dtype=np.float64) * scale
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def as_matrix(
    features: tuple[str, ...], data: Any, categories: Categories | None = None
) -> np.ndarray:
    """A (rows, features) float64 matrix from a pyarrow Table, a DataFrame, a dict or an array;
    text values of category features become their codes (`category_codes`)."""
    import numpy as np

    cats = categories or {}
    if hasattr(data, "column_names"):
        # training's own column encoding (dates as epoch seconds): serving cannot drift
        missing = [f for f in features if f not in data.column_names]
        if missing:
            raise InputError(f"missing feature column(s): {', '.join(missing)}", field="data")
        return np.column_stack([column_array(data, f, cats.get(f)) for f in features])
    if isinstance(data, Mapping) or hasattr(data, "columns"):
        keys = set(data.keys()) if isinstance(data, Mapping) else set(data.columns)
        missing = [f for f in features if f not in keys]
        if missing:
            raise InputError(f"missing feature(s): {', '.join(missing)}", field="data")

        def values(f: str) -> np.ndarray:
            if f in cats:
                raw = data[f]
                items = [raw] if isinstance(raw, str) else list(raw)
                return category_codes(items, cats[f])
            return np.asarray(data[f], dtype=np.float64).reshape(-1)

        return np.column_stack([values(f) for f in features])
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != len(features):
        got = arr.shape[1] if arr.ndim == 2 else arr.ndim
        raise InputError(f"expected {len(features)} feature columns, got {got}", field="data")
    return arr


def logit(p: np.ndarray) -> np.ndarray:
    import numpy as np

    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def meta_json(
    features: list[str],
    reference: dict[str, Any],
    categories: Categories | None = None,
    linear_base: Mapping[str, Any] | None = None,
) -> str:
    """LedgerML's metadata, canonical (sorted keys, no spaces): part of the model's bytes.
    `categories` and `linear_base` are written only when there are some, so older models
    keep their bytes."""
    doc: dict[str, Any] = {"features": list(features), "reference": reference}
    if categories:
        doc["categories"] = {k: list(v) for k, v in categories.items()}
    if linear_base:
        doc[LINEAR_BASE_KEY] = dict(linear_base)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def categories_of(meta: Mapping[str, Any], features: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The categories stored in a model's metadata, checked against its features."""
    raw = meta.get("categories") or {}
    if not isinstance(raw, Mapping) or not set(raw) <= set(features):
        raise ValueError("categories do not match the features")
    out: dict[str, tuple[str, ...]] = {}
    for name, values in raw.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValueError(f"categories of {name} are not a list of strings")
        out[str(name)] = tuple(values)
    return out


def refused(source: str, why: str) -> InputError:
    """The one error for a model file we will not load: names the file, says why."""
    return InputError(f"{why}; LedgerML never unpickles or runs code from a model", field=source)


@dataclass(frozen=True)
class Model:
    """A loaded model: the scoring surface every format shares (XGBoost and logistic
    models are `ledgerml.mlops.models.xgboost.LoadedModel`, a subclass)."""

    cid: str
    model_type: str
    features: tuple[str, ...]
    reference: dict[str, Any] = field(hash=False)
    explanation: str = OCCLUSION
    _impl: Any = field(default=None, hash=False, repr=False)
    #: Text features and their categories (code = index); empty for all-numeric models.
    categories: Categories = field(default_factory=dict, hash=False, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "cid": self.cid,
            "model_type": self.model_type,
            "features": list(self.features),
            "explanation": self.explanation,
        }
        if self.categories:
            doc["categories"] = {k: list(v) for k, v in self.categories.items()}
        return doc

    def matrix(self, data: Any) -> np.ndarray:
        return as_matrix(self.features, data, self.categories)

    def predict_proba(self, data: Any) -> np.ndarray:
        """Probability of the positive class per row (1-D)."""
        return self._predict(self.matrix(data))

    def _predict(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - per format
        raise NotImplementedError

    def logits(self, x: np.ndarray) -> np.ndarray:
        return logit(self._predict(x))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Log-odds contributions (rows, features + 1; last = bias).

        Model-agnostic default (`OCCLUSION`): one batched prediction of every row with each
        feature in turn set to its training median; bias = log-odds of the all-median row.
        Formats with native contributions override this.
        """
        import numpy as np

        ref = self.reference.get("values") or []
        median = np.array(
            [float(ref[i][2]) if i < len(ref) else 0.0 for i in range(len(self.features))]
        )
        n, f = x.shape
        probe = np.repeat(x[:, None, :], f, axis=1)  # (n, f, f)
        idx = np.arange(f)
        probe[:, idx, idx] = median
        base = self.logits(x)
        occluded = self.logits(probe.reshape(n * f, f)).reshape(n, f)
        bias = self.logits(median.reshape(1, -1))[0]
        return np.hstack([base[:, None] - occluded, np.full((n, 1), bias)])

    def explain(
        self, rows: Any, top: int = 3, descriptions: Mapping[str, str] | None = None
    ) -> list[list[Reason]]:
        """Top reasons per row, in plain words (see `ledgerml.mlops.explain`)."""
        from ledgerml.mlops.explain import reasons

        return reasons(self, self.matrix(rows), top=top, descriptions=descriptions)


def read_file(path: str | Path, *, field: str, limit: int = 512 * 1024 * 1024) -> bytes:
    """The bytes of a model file; `InputError` naming the parameter and file if unreadable."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise InputError(f"{p}: {size:,} bytes is larger than {limit:,}", field=field)
        return p.read_bytes()
    except InputError:
        raise
    except IsADirectoryError:
        raise InputError(f"{p} is a folder, not a model file", field=field) from None
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}", field=field) from None
