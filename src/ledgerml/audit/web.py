"""The auditor's web pages under `/audit/` of `ledgerml serve` (read-only).

    app.include_router(audit_router(paths, read_check))   # read_check: the service's role check

`GET /audit/` is a static page (no data in it) that asks for an API key; the page keeps
the key in `sessionStorage` and sends it as an `X-API-Key` header with every `fetch`,
never in a URL. Every data endpoint under `/audit/api/` requires an `auditor` or
`admin` key (401 without, 403 for a `scorer` key); the page itself also answers 403 to a
request that carries a key of another role. Nothing here writes to the ledger.

The "verify" button re-checks a proof in the browser: SHA-256 (WebCrypto) of 0x00 ‖ the
exact entry bytes, the RFC 9162 §2.1.3.2 path to a root, that root against the
checkpoint note's root, and the note's Ed25519 signature against the log's verifier key.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from ledgerml.audit._page import PAGE
from ledgerml.audit.bundle import bundle_bytes, select_decisions, select_model
from ledgerml.audit.trace import summarize, trace_decision, trace_model
from ledgerml.audit.view import AuditView
from ledgerml.config import ProjectPaths
from ledgerml.errors import InputError

PAGE_LIMIT = 200


def audit_router(paths: ProjectPaths, read_check: Callable[[Request], Any]) -> APIRouter:
    """Routes for `/audit/`; `read_check` raises 401/403 unless the key may read."""
    local = threading.local()

    def view() -> AuditView:
        v = getattr(local, "view", None)
        if v is None:
            v = AuditView.open(paths)
            local.view = v
        else:
            v.refresh()
        return v

    async def page_check(request: Request) -> None:
        # The page holds no data; a request carrying a key must still carry a reading one.
        if request.headers.get("authorization") or request.headers.get("x-api-key"):
            checked = read_check(request)
            if inspect.isawaitable(checked):  # the service's check may be sync or async
                await checked

    reader = Depends(read_check)
    router = APIRouter(prefix="/audit", tags=["audit"])

    @router.get("/", response_class=HTMLResponse, dependencies=[Depends(page_check)])
    def page() -> HTMLResponse:
        """The auditor's single-page app (static; enter an auditor key in it)."""
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store"})

    @router.get("/api/checkpoint", dependencies=[reader])
    def checkpoint() -> dict[str, Any]:
        v = view()
        return {**v.checkpoint.to_json(), "vkeys": v.vkeys(), "indexed": v.index.watermark}

    @router.get("/api/witnesses", dependencies=[reader])
    def witnesses() -> dict[str, Any]:
        """The witness policy and which witnesses cosigned which checkpoint (issue 13)."""
        from ledgerml.witness.publisher import witness_overview

        return witness_overview(paths)

    @router.get("/api/entries", dependencies=[reader])
    def entries(
        start: int | None = Query(None, ge=0), limit: int = Query(50, ge=1, le=PAGE_LIMIT)
    ) -> dict[str, Any]:
        """A page of the ledger, newest first unless `start` is given."""
        v = view()
        size = v.index.watermark
        lo = max(0, size - limit) if start is None else start
        hi = min(size, lo + limit)
        rows = []
        for i in range(hi - 1, lo - 1, -1):
            e = v.prove(i)
            rows.append({"index": i, "type": e.type, "time": e.time, "summary": summarize(e)[:200]})
        return {"size": size, "start": lo, "entries": rows}

    @router.get("/api/decisions", dependencies=[reader])
    def decisions(
        q: str | None = Query(None, min_length=1, max_length=200),
        limit: int = Query(20, ge=1, le=PAGE_LIMIT),
    ) -> dict[str, Any]:
        """Find a decision by its ID, or list the newest decisions."""
        v = view()
        if q is not None:
            found = v.index.find(q, "decision.recorded")
            if not found:
                raise HTTPException(404, f"no decision {q!r}")
        else:
            found = v.index.by_type("decision.recorded", newest=True, limit=limit)
        out = []
        for i in found:
            e = v.prove(i)
            out.append({"index": i, "time": e.time, **{k: e.body.get(k) for k in _DECISION_KEYS}})
        return {"decisions": out}

    @router.get("/api/trace", dependencies=[reader])
    def trace(
        decision: str | None = Query(None, min_length=1, max_length=200),
        model: str | None = Query(None, min_length=1, max_length=200),
    ) -> dict[str, Any]:
        """The lineage of a decision or a model, each step with its proof."""
        if (decision is None) == (model is None):
            raise HTTPException(422, "give exactly one of decision= or model=")
        v = view()
        try:
            t = trace_decision(v, decision) if decision else trace_model(v, model or "")
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None
        return t.to_json()

    @router.get("/api/proof/{index}", dependencies=[reader])
    def proof(index: int) -> dict[str, Any]:
        """One entry's bytes, its inclusion proof, the checkpoint and the verifier keys."""
        v = view()
        if not 0 <= index < v.index.watermark:
            raise HTTPException(404, f"no entry {index}")
        e = v.prove(index)
        return {
            **e.to_json(),
            "checkpoint": v.checkpoint.note,
            "vkeys": v.vkeys(),
        }

    @router.get("/api/bundle", dependencies=[reader])
    def bundle(
        model: str | None = Query(None, min_length=1, max_length=200),
        decisions: str | None = Query(None, min_length=4, max_length=80),
    ) -> Response:
        """An audit bundle (zip) for a model's lineage or a range of decisions."""
        if (model is None) == (decisions is None):
            raise HTTPException(422, "give exactly one of model= or decisions=")
        v = view()
        try:
            sel = select_model(v, model) if model else select_decisions(v, decisions or "")
        except InputError as exc:
            raise HTTPException(422 if exc.field == "--decisions" else 404, str(exc)) from None
        data = bundle_bytes(v, sel)
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="audit-bundle.zip"'},
        )

    return router


_DECISION_KEYS = ("decision_id", "model_cid", "score", "threshold", "outcome", "reasons")
