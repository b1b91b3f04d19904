"""XGBoost: a `Booster` or the scikit-learn wrapper (`XGBClassifier`), stored as UBJSON.

Why one format for both: the wrapper is a Booster plus Python attributes; scoring
needs only the Booster, so both are stored as the Booster's UBJSON with LedgerML's
metadata as a booster attribute — the same file `ledgerml train` writes, loaded by
`native_model` below (TreeSHAP contributions, a one-thread copy for small batches).
UBJSON of a given booster is byte-stable. The logistic format (`ledgerml train --model
logreg`) loads into the same `LoadedModel`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledgerml.errors import InputError
from ledgerml.mlops.models._base import (
    LINEAR_BASE_KEY,
    META_KEY,
    Model,
    categories_of,
    linear_margin,
    linear_terms,
    meta_json,
    refused,
)

if TYPE_CHECKING:
    import numpy as np

#: Batches up to this many rows are scored on one thread (see `LoadedModel._single`).
SMALL_BATCH = 64


@dataclass(frozen=True)
class LoadedModel(Model):
    """An XGBoost or logistic model read back from the CAS (verified by its CID): `Model`'s
    scoring surface (`matrix`, `predict_proba`, `explain`) with native contributions."""

    #: XGBoost only: a one-thread copy for small batches. OpenMP's second thread costs a
    #: single-row prediction more than it saves and spin-waits a core that a service
    #: needs for its requests (measured: 6x the CPU time, p99 40 ms vs 0.4 ms under load).
    _single: Any = field(default=None, hash=False, repr=False)
    #: XGBoost only: the linear base the trees were boosted from (`linear_base`), or None.
    _linear: Any = field(default=None, hash=False, repr=False)

    def _booster(self, rows: int) -> Any:
        return self._single if rows <= SMALL_BATCH and self._single is not None else self._impl

    def _predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.model_type == "xgboost" and self._linear is None:
            # In-place prediction skips the DMatrix (same bytes out; tested).
            return np.asarray(self._booster(len(x)).inplace_predict(x), dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-self.logits(x)))

    def logits(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        if self.model_type == "xgboost":
            booster = self._booster(len(x))
            if self._linear is None:
                margin = booster.inplace_predict(x, predict_type="margin")
                return np.asarray(margin, dtype=np.float64)
            # Trees on top of the line: the trees' margin with a zero base, plus the line's.
            trees = booster.inplace_predict(x, predict_type="margin", base_margin=np.zeros(len(x)))
            return np.asarray(trees, dtype=np.float64) + linear_margin(self._linear, x)
        doc = self._impl
        z = (x - np.asarray(doc["mean"])) / np.asarray(doc["scale"])
        return z @ np.asarray(doc["coef"]) + float(doc["intercept"])

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Log-odds contributions (rows, features + 1; last = bias); TreeSHAP for XGBoost."""
        import numpy as np

        if self.model_type == "xgboost":
            import xgboost as xgb

            booster = self._booster(len(x))
            threads = 1 if booster is self._single else None  # None: XGBoost's default
            if self._linear is None:
                data = xgb.DMatrix(x, feature_names=list(self.features), nthread=threads)
                return np.asarray(booster.predict(data, pred_contribs=True), dtype=np.float64)
            # Exact and additive: TreeSHAP of the trees (zero base) plus each feature's
            # linear term; the line's intercept joins the bias.
            data = xgb.DMatrix(
                x, base_margin=np.zeros(len(x)), feature_names=list(self.features), nthread=threads
            )
            contrib = np.asarray(booster.predict(data, pred_contribs=True), dtype=np.float64)
            contrib[:, :-1] += linear_terms(self._linear, x)
            contrib[:, -1] += float(self._linear["intercept"])
            return contrib
        doc = self._impl
        mean = np.asarray(doc["mean"])
        coef = np.asarray(doc["coef"])
        contrib = ((x - mean) / np.asarray(doc["scale"])) * coef
        bias = np.full((len(x), 1), float(doc["intercept"]))
        return np.hstack([contrib, bias])


def native_model(kind: str, cid: str, raw: bytes, *, source: str, explanation: str) -> LoadedModel:
    """An XGBoost or logistic model from its bytes: the `xgboost` and `logreg` formats' load."""
    if kind == "logreg":
        try:
            doc = json.loads(raw)
            ref = doc[META_KEY]["reference"]
            names = tuple(doc["features"])
            cats = categories_of(doc[META_KEY], names)
        except (ValueError, KeyError, TypeError):
            raise refused(source, "a damaged ledgerml-logreg/v1 document") from None
        return LoadedModel(cid, "logreg", names, ref, explanation, doc, categories=cats)
    import xgboost as xgb

    try:
        booster = xgb.Booster(model_file=bytearray(raw))
    except xgb.core.XGBoostError:
        raise refused(source, "not a readable XGBoost model") from None
    booster.set_param({"nthread": 2})
    single = booster.copy()
    single.set_param({"nthread": 1})
    try:
        meta = json.loads(booster.attr(META_KEY) or "{}")
        names = tuple(meta.get("features") or booster.feature_names or ())
        cats = categories_of(meta, names)
        linear = _linear_base(meta.get(LINEAR_BASE_KEY), len(names))
    except (ValueError, TypeError, AttributeError, KeyError):
        raise refused(source, "an XGBoost model with damaged LedgerML metadata") from None
    return LoadedModel(
        cid,
        "xgboost",
        names,
        meta.get("reference", {}),
        explanation if linear is None else LINEAR_BASE_EXPLANATION,
        booster,
        single,
        linear,
        categories=cats,
    )


#: How a linear-base model's contributions are computed (its reasons say so).
LINEAR_BASE_EXPLANATION = (
    "native: TreeSHAP contributions of the trees (pred_contribs=True) plus each feature's "
    "linear-base term (coefficient x standardised value), log-odds"
)


def _linear_base(doc: Any, features: int | None = None) -> dict[str, Any] | None:
    """A stored linear base, checked for shape (a damaged one must not score quietly):
    its three lists agree with each other and, when given, with `features`."""
    if doc is None:
        return None
    if doc.get("format") != "ledgerml-linear-base/v1":
        raise ValueError("unknown linear base format")
    width = len(doc["coef"]) if features is None else features
    for key in ("mean", "scale", "coef"):
        values = doc[key]
        if len(values) != width or not all(isinstance(v, int | float) for v in values):
            raise ValueError(f"linear base {key} does not match the features")
    float(doc["intercept"])
    return dict(doc)


class XGBoostFormat:
    name = "xgboost"
    explanation = "native: TreeSHAP contributions from XGBoost (pred_contribs=True), log-odds"

    def sniff(self, raw: bytes) -> bool:
        # UBJSON ({L…learner) or JSON ({"learner") object whose first key is "learner"
        return raw[:1] == b"{" and b"learner" in raw[:24]

    def accepts(self, obj: Any) -> bool:
        mod = type(obj).__module__
        return mod.startswith("xgboost.") and (
            type(obj).__name__ == "Booster" or hasattr(obj, "get_booster")
        )

    def dump(self, obj: Any, *, features: list[str], reference: dict[str, Any]) -> bytes:
        booster = obj.get_booster() if hasattr(obj, "get_booster") else obj
        # A booster `ledgerml train` made keeps its linear base: without it the trees alone
        # would score differently from the model that was trained and checked.
        try:
            old_meta = json.loads(booster.attr(META_KEY) or "{}")
            linear = _linear_base(old_meta.get(LINEAR_BASE_KEY))
        except (ValueError, TypeError, AttributeError, KeyError):
            raise InputError(
                "the booster carries damaged LedgerML metadata", field="model"
            ) from None
        if linear is not None and len(linear["coef"]) != len(features):
            raise InputError(
                f"the model was boosted from a linear base over {len(linear['coef'])} "
                f"features, not {len(features)}",
                field="features",
            )
        booster = booster.copy()
        booster.feature_names = list(features)
        booster.set_attr(**{META_KEY: meta_json(features, reference, linear_base=linear)})
        return bytes(booster.save_raw(raw_format="ubj"))

    def load(self, cid: str, raw: bytes, *, source: str) -> Any:
        return native_model(self.name, cid, raw, source=source, explanation=self.explanation)

    def framework(self) -> str:
        import xgboost

        return f"xgboost {xgboost.__version__}"


class LogregFormat:
    """LedgerML's own standardised logistic regression (canonical JSON from `ledgerml train`)."""

    name = "logreg"
    explanation = "native: coefficient x standardised value, log-odds"

    def sniff(self, raw: bytes) -> bool:
        return raw[:1] == b"{" and b'"ledgerml-logreg/v1"' in raw

    def accepts(self, obj: Any) -> bool:
        return False  # made by `ledgerml train --model logreg` only

    def dump(self, obj: Any, *, features: list[str], reference: dict[str, Any]) -> bytes:
        raise NotImplementedError("logreg models are written by ledgerml train")

    def load(self, cid: str, raw: bytes, *, source: str) -> Any:
        return native_model(self.name, cid, raw, source=source, explanation=self.explanation)

    def framework(self) -> str:
        import sklearn

        return f"scikit-learn {sklearn.__version__}"
