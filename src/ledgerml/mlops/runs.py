"""Recording a training run: its id, the provenance `run.started` carries, and the bodies of
`run.finished` and `model.registered`.

Why one place: every way of making a model (`training.train_model`, and the federated
runner) writes the same three entries, and the compliance checks read them back
(`lineage_recorded` follows `model.registered` -> `run.started` / `run.finished`). Built
here, they cannot drift apart.

Usage::

    run_id = new_run_id()                                     # run-20260101T000000Z-1a2b3c4d
    started = {..., "code_version": code_version(), "library_versions": library_versions()}
    ledger.append("run.finished", run_failed(run_id, exc, duration_s=12.3))
    ledger.append("run.finished", run_succeeded(run_id, model_cid, duration_s=12.3))
    ledger.append("model.registered", model_registered(name, cid, run_id, ...))
"""

from __future__ import annotations

import platform
import secrets
import time
from collections.abc import Sequence
from typing import Any

#: A failed run's error message is cut to this many characters.
MAX_ERROR_CHARS = 500


def new_run_id(prefix: str = "run", token_bytes: int = 4) -> str:
    """`<prefix>-<UTC time>-<random hex>`: sortable by start time, unique per run."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{prefix}-{stamp}-{secrets.token_hex(token_bytes)}"


def library_versions() -> dict[str, str]:
    import numpy
    import pyarrow
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
    }


def code_version() -> str:
    from ledgerml import __version__

    return f"ledgerml {__version__}"


def run_failed(
    run_id: str, exc: BaseException, *, duration_s: float | None = None
) -> dict[str, Any]:
    """The `run.finished` body of a run that raised `exc` (the error cut to MAX_ERROR_CHARS)."""
    body: dict[str, Any] = {"run_id": run_id, "status": "failed"}
    if duration_s is not None:
        body["duration_s"] = round(duration_s, 3)
    body["error"] = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
    return body


def run_succeeded(run_id: str, model_cid: str, *, duration_s: float) -> dict[str, Any]:
    """The `run.finished` body of a run that stored `model_cid`."""
    return {
        "run_id": run_id,
        "status": "succeeded",
        "model_cid": model_cid,
        "duration_s": round(duration_s, 3),
    }


def model_registered(
    name: str,
    cid: str,
    run_id: str,
    framework: str,
    features: Sequence[tuple[str, str]],
    target: str,
    *,
    dataset_cids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The `model.registered` body: the model, the run that made it and its feature schema."""
    body: dict[str, Any] = {"name": name, "cid": cid, "run_id": run_id, "framework": framework}
    if dataset_cids is not None:
        body["dataset_cids"] = list(dataset_cids)
    body["features"] = [{"name": n, "dtype": t} for n, t in features]
    body["target"] = target
    return body
