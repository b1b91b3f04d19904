"""The witness over HTTP (c2sp.org/tlog-witness v1): a thin Starlette app over `Witness`.

    app = create_witness_app(Path("w"))
    uvicorn.run(app, host="127.0.0.1", port=7380)

`POST /add-checkpoint` and `GET /<sha256(origin) hex>/checkpoint` (the monitoring
prefix is the submission prefix). The body is read with a cap, so a huge body costs at
most `MAX_BODY_BYTES` of memory before the 413. `GET /metrics` counts answers by status.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ledgerml.witness.core import MAX_BODY_BYTES, TOO_LARGE, Answer, Witness

_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}", re.ASCII)


def create_witness_app(home: Path) -> Any:
    """The ASGI app of the witness in `home` (opened now: a missing key fails at start)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    witness = Witness.open(home)

    def respond(answer: Answer) -> Response:
        return Response(answer.body, status_code=answer.status, media_type=answer.content_type)

    async def add_checkpoint(request: Request) -> Response:
        chunks: list[bytes] = []
        total = 0
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return respond(TOO_LARGE)
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY_BYTES:
                return respond(TOO_LARGE)
            chunks.append(chunk)
        # SQLite's fsync and the signature run off the event loop
        return respond(await run_in_threadpool(witness.add_checkpoint, b"".join(chunks)))

    async def checkpoint(request: Request) -> Response:
        origin_hash = request.path_params["origin_hash"]
        if not _ORIGIN_HASH.fullmatch(origin_hash):
            return respond(Answer(404, "not a lowercase hex SHA-256 origin hash\n"))
        return respond(await run_in_threadpool(witness.latest, origin_hash))

    async def metrics(_: Request) -> Response:
        lines = [
            "# HELP ledgerml_witness_requests_total add-checkpoint answers by HTTP status.",
            "# TYPE ledgerml_witness_requests_total counter",
            *(
                f'ledgerml_witness_requests_total{{status="{s}"}} {n}'
                for s, n in sorted(witness.counts.items())
            ),
        ]
        return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            witness.close()

    app = Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/{origin_hash}/checkpoint", checkpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.witness = witness
    return app


def serve_witness(home: Path, *, host: str, port: int) -> None:
    """Run the witness until interrupted (one process, keep-alive connections)."""
    import uvicorn

    uvicorn.run(create_witness_app(home), host=host, port=port, log_level="warning")
