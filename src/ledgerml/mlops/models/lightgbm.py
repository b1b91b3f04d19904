"""LightGBM: the text model, with LedgerML's metadata on one header line.

Why text: it is LightGBM's own portable format (no pickle), byte-stable for a given
model, and a plain `lightgbm.Booster(model_file=...)` still loads our stored file —
LightGBM ignores the unknown `ledgerml=` header key. Contributions are native:
`pred_contrib=True` gives TreeSHAP values in log-odds, last column the expected value.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ledgerml.mlops.models._base import META_KEY, Model, meta_json, refused

if TYPE_CHECKING:
    import numpy as np

_MAGIC = b"tree\nversion="
_HEADER = f"{META_KEY}=".encode()


class LightGBMModel(Model):
    def _predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self._impl.predict(x, num_threads=1), dtype=np.float64)

    def logits(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self._impl.predict(x, raw_score=True, num_threads=1), dtype=np.float64)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        return np.asarray(self._impl.predict(x, pred_contrib=True, num_threads=1), np.float64)


class LightGBMFormat:
    name = "lightgbm"
    explanation = "native: TreeSHAP contributions from LightGBM (pred_contrib=True), log-odds"

    def sniff(self, raw: bytes) -> bool:
        return raw.startswith(_MAGIC)

    def accepts(self, obj: Any) -> bool:
        mod = type(obj).__module__
        return (mod.startswith("lightgbm.") and hasattr(obj, "booster_")) or (
            mod.startswith("lightgbm.") and type(obj).__name__ == "Booster"
        )

    def dump(self, obj: Any, *, features: list[str], reference: dict[str, Any]) -> bytes:
        booster = obj.booster_ if hasattr(obj, "booster_") else obj
        text = booster.model_to_string(num_iteration=-1)
        tree, version, rest = text.split("\n", 2)  # the magic lines stay first
        return f"{tree}\n{version}\n{META_KEY}={meta_json(features, reference)}\n{rest}".encode()

    def load(self, cid: str, raw: bytes, *, source: str) -> LightGBMModel:
        import lightgbm as lgb

        meta: dict[str, Any] = {}
        try:
            text = raw.decode("utf-8")
            for line in text.split("\n", 8)[:8]:
                if line.startswith(_HEADER.decode()):
                    meta = json.loads(line[len(_HEADER) :])
            booster = lgb.Booster(model_str=text)
        except Exception as exc:  # LightGBMError, UnicodeDecodeError, JSONDecodeError
            raise refused(
                source, f"not a readable LightGBM text model ({type(exc).__name__})"
            ) from None
        if booster.num_model_per_iteration() != 1:
            raise refused(source, "a LightGBM model with several classes, not a binary one")
        names = tuple(meta.get("features") or booster.feature_name())
        return LightGBMModel(
            cid, self.name, names, meta.get("reference", {}), self.explanation, booster
        )

    def framework(self) -> str:
        import lightgbm

        return f"lightgbm {lightgbm.__version__}"
