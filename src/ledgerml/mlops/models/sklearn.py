"""scikit-learn estimators and pipelines, stored with skops (never pickle).

Why skops: its format is a zip of a JSON schema and `.npy` arrays; loading builds only
types on a trusted list, so a model file cannot run its author's code. A file naming
any type outside skops' default trusted list (plus `EXTRA_TRUSTED`) is refused, naming
the types; a pickle is not a zip and is refused before anything parses it.

skops names its members after `id()` of the objects (memory addresses) and stamps the
current time, so the same model gives different bytes each time. `dump` renumbers the
ids in order of appearance, fixes the timestamps and sorts the members: the same fitted
model then has the same CID. LedgerML's metadata is the zip comment (skops ignores it).
No native contributions: reasons use the model-agnostic `OCCLUSION` method.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from typing import TYPE_CHECKING, Any

from ledgerml.errors import InputError
from ledgerml.mlops.models._base import OCCLUSION, Model, meta_json, refused

if TYPE_CHECKING:
    import numpy as np

#: Beyond skops' default trusted list: scikit-learn's fitted-tree containers, rebuilt from
#: arrays by their own `__setstate__` (no callables). skops leaves them out of its default
#: list only because they are Cython types; every tree ensemble needs one of them.
EXTRA_TRUSTED = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)
_ID = re.compile(rb'("__id__": )(\d+)|"(\d+)\.npy"')
_EPOCH = (1980, 1, 1, 0, 0, 0)


class SklearnModel(Model):
    def _predict(self, x: np.ndarray) -> np.ndarray:
        import numpy as np

        with warnings.catch_warnings():  # fitted on a DataFrame, scored on its values
            warnings.filterwarnings("ignore", "X does not have valid feature names")
            proba = np.asarray(self._impl.predict_proba(x), dtype=np.float64)
        return proba[:, 1] if proba.ndim == 2 else proba


def normalise(raw: bytes, comment: bytes) -> bytes:
    """Deterministic skops bytes: ids renumbered by first appearance, fixed times, sorted."""
    src = zipfile.ZipFile(io.BytesIO(raw))
    schema = src.read("schema.json")
    ids: dict[bytes, bytes] = {}

    def renumber(m: re.Match[bytes]) -> bytes:
        old = m.group(2) or m.group(3)
        new = ids.setdefault(old, str(len(ids) + 1).encode())
        return m.group(1) + new if m.group(1) else b'"' + new + b'.npy"'

    schema = _ID.sub(renumber, schema)
    members = {"schema.json": schema}
    for name in src.namelist():
        if name != "schema.json":
            stem = name.removesuffix(".npy").encode()
            members[ids.get(stem, stem).decode() + ".npy"] = src.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            z.writestr(info, members[name])
        z.comment = comment
    return out.getvalue()


class SklearnFormat:
    name = "sklearn"
    explanation = f"model-agnostic: {OCCLUSION}"

    def sniff(self, raw: bytes) -> bool:
        return raw.startswith(b"PK\x03\x04")

    def accepts(self, obj: Any) -> bool:
        return type(obj).__module__.startswith("sklearn.") and hasattr(obj, "predict_proba")

    def dump(self, obj: Any, *, features: list[str], reference: dict[str, Any]) -> bytes:
        import skops.io as sio

        return normalise(sio.dumps(obj), meta_json(features, reference).encode())

    def load(self, cid: str, raw: bytes, *, source: str) -> SklearnModel:
        import skops.io as sio

        try:
            with zipfile.ZipFile(io.BytesIO(raw)) as z:
                if "schema.json" not in z.namelist():
                    raise refused(source, "a zip file without skops' schema.json")
                comment = z.comment
            untrusted = sio.get_untrusted_types(data=raw)
        except InputError:
            raise
        except zipfile.BadZipFile:
            raise refused(source, "not a skops file (not a valid zip)") from None
        except Exception as exc:
            raise refused(source, f"not a readable skops file ({type(exc).__name__})") from None
        untrusted = [t for t in untrusted if t not in EXTRA_TRUSTED]
        if untrusted:
            shown = ", ".join(sorted(untrusted)[:5])
            raise refused(source, f"the skops file holds untrusted type(s): {shown}")
        try:
            # skops' default trusted list plus EXTRA_TRUSTED: nothing else is constructed
            est = sio.loads(raw, trusted=sorted(EXTRA_TRUSTED) or None)
        except Exception as exc:
            raise refused(source, f"skops could not load the file ({type(exc).__name__})") from None
        if not hasattr(est, "predict_proba"):
            raise refused(source, f"{type(est).__name__} has no predict_proba")
        meta = json.loads(comment or b"{}") if comment.startswith(b"{") else {}
        width = getattr(est, "n_features_in_", None)
        names = tuple(meta.get("features") or ())
        if not names:
            fn = getattr(est, "feature_names_in_", None)
            names = tuple(str(n) for n in fn) if fn is not None else ()
        if not names and isinstance(width, int):
            names = tuple(f"f{i}" for i in range(width))
        if isinstance(width, int) and width != len(names):
            raise refused(
                source, f"the estimator takes {width} features, metadata names {len(names)}"
            )
        return SklearnModel(cid, self.name, names, meta.get("reference", {}), self.explanation, est)

    def framework(self) -> str:
        import sklearn
        import skops

        return f"scikit-learn {sklearn.__version__} (skops {skops.__version__})"
