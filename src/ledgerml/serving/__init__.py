"""The decision service: score with the promoted model, record every decision, prove it.

    from ledgerml.serving import create_app, DecisionService
    app = create_app(paths, mode="sync")     # FastAPI; `ledgerml serve` runs it with uvicorn

`scoring` is pure validation and input commitments; `decisions` scores and
records through a bounded group-commit logger; `tlog` serves C2SP tiles.
"""

from __future__ import annotations

from ledgerml.serving.decisions import Decision, DecisionService
from ledgerml.serving.scoring import MAX_BATCH, commit_input, parse_request


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy so `import ledgerml.serving` does not import FastAPI."""
    from ledgerml.serving.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = [
    "MAX_BATCH",
    "Decision",
    "DecisionService",
    "commit_input",
    "create_app",
    "parse_request",
]
