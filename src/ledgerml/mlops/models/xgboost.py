"""XGBoost: a `Booster` or the scikit-learn wrapper (`XGBClassifier`), stored as UBJSON.

Why one format for both: the wrapper is a Booster plus Python attributes; scoring
needs only the Booster, so both are stored as the Booster's UBJSON with LedgerML's
metadata as a booster attribute — the same file `ledgerml train` writes, loaded by
`ledgerml.mlops.training.native_model` (TreeSHAP contributions, a one-thread copy
for small batches). UBJSON of a given booster is byte-stable.
"""

from __future__ import annotations

from typing import Any

from ledgerml.mlops.models._base import META_KEY, meta_json


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
        booster = booster.copy()
        booster.feature_names = list(features)
        booster.set_attr(**{META_KEY: meta_json(features, reference)})
        return bytes(booster.save_raw(raw_format="ubj"))

    def load(self, cid: str, raw: bytes, *, source: str) -> Any:
        from ledgerml.mlops.training import native_model

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
        from ledgerml.mlops.training import native_model

        return native_model(self.name, cid, raw, source=source, explanation=self.explanation)

    def framework(self) -> str:
        import sklearn

        return f"scikit-learn {sklearn.__version__}"
