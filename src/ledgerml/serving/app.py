"""The FastAPI app: score and record decisions, serve proofs, checkpoints and tiles.

    app = create_app(paths, mode="sync")          # keys from config.toml [serving.api_keys]
    uvicorn.run(app, host="127.0.0.1", port=8000)

Roles: `scorer` may score, `auditor` may read (decisions, proofs, checkpoint,
tiles, models), `admin` both. `/healthz`, `/metrics` and the docs are open.
Endpoints are plain `def` so the blocking durable commit runs in the thread
pool; concurrent requests then share one group commit in the ledger writer.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.api_keys import API_ROLES, read_api_keys
from ledgerml.errors import InputError, VerificationError
from ledgerml.ledger.log import Checkpoint
from ledgerml.ledger.postgres import PostgresLedger
from ledgerml.serving.background import BackgroundJobs, JobStatus
from ledgerml.serving.decisions import Backpressure, DecisionService, Mode
from ledgerml.serving.scoring import DEFAULT_ALIAS, MAX_BATCH, parse_request
from ledgerml.serving.tlog import SQLiteRows, parse_tile_path, read_tlog
from ledgerml.witness.publisher import ServicePublisher, start_publisher, witness_metrics

ROLES = API_ROLES  # ("scorer", "auditor", "admin")
SCORE_ROLES = frozenset({"scorer", "admin"})
READ_ROLES = frozenset({"auditor", "admin"})
IMMUTABLE = "public, max-age=31536000, immutable"


def load_api_keys(
    paths: ProjectPaths, serving: Mapping[str, Any] | None = None
) -> dict[str, list[str]]:
    """`[serving.api_keys]`: role = "key" or ["key", ...]; unknown roles are refused."""
    if serving is None:
        serving = _serving_config(paths)
    # keys/api-keys.toml (made by `ledgerml init`, 0600); a role set in config.toml replaces it
    cfg = {**read_api_keys(paths.keys), **serving.get("api_keys", {})}
    out: dict[str, list[str]] = {}
    for role, keys in cfg.items():
        if role not in ROLES:
            raise InputError(
                f"unknown role {role!r} (roles: {', '.join(ROLES)})",
                field=f"serving.api_keys.{role}",
            )
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list) or not all(isinstance(k, str) and len(k) >= 16 for k in keys):
            raise InputError(
                "must be a key of at least 16 characters or a list of them",
                field=f"serving.api_keys.{role}",
            )
        out[role] = keys
    return out


class KeyRing:
    """API keys held as SHA-256 digests and matched in constant time.

    A dict lookup on the presented key would leak, through timing, how much of a guess
    matches a stored key. Here the presented key is hashed, and its digest is compared with
    `hmac.compare_digest` against every stored digest, without stopping at a match.
    """

    def __init__(self, api_keys: Mapping[str, Sequence[str] | str]) -> None:
        entries: list[tuple[bytes, str]] = []
        for role, keys in api_keys.items():
            if role not in ROLES:
                raise InputError(f"unknown role {role!r}", field="api_keys")
            for key in [keys] if isinstance(keys, str) else keys:
                entries.append((_digest(key), role))
        self._entries = tuple(entries)

    def role_of(self, key: str) -> str | None:
        """The role of `key`, or None; the time taken does not depend on which key matched."""
        presented = _digest(key)
        found: str | None = None
        for digest, role in self._entries:
            if hmac.compare_digest(presented, digest) and found is None:
                found = role
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _problem(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"detail": {"message": message, "field": field}}, status_code=status)


def _nan_ok(name: str) -> float:
    return float(name)  # keep NaN/Infinity so validation can name the field


#: A score request holds at most MAX_BATCH records of numbers: a few hundred KiB at most.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: A model file uploaded to `POST /v1/models`.
MAX_MODEL_BYTES = 64 * 1024 * 1024


#: A score body nests at most 4 deep (body, records, record, features); leave room, no more.
MAX_DEPTH = 32
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def _parse_json(body: bytes) -> Any:
    """A request body as JSON; oversized, too deeply nested or malformed -> InputError.

    orjson first (fast, and its depth is capped at 1,024); what it refuses — NaN and
    Infinity, which we parse so that validation can name the field, numbers past a double,
    lone surrogates — goes to the stdlib parser, after a nesting check: json's C parser
    recurses once per level and relies on the recursion limit, which importing py-evm
    raises to 100,000 for the whole process, so a body nested 100,000 deep crashed the
    server (SIGSEGV) instead of raising.
    """
    if len(body) > MAX_BODY_BYTES:
        raise InputError(f"is over {MAX_BODY_BYTES:,} bytes", field="body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        depth = 0
        for ch in _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET):
            depth += 1 if ch in b"[{" else -1
            if depth > MAX_DEPTH:
                raise InputError(f"is nested deeper than {MAX_DEPTH} levels", field="body")
    try:
        return json.loads(body, parse_constant=_nan_ok)
    except (ValueError, RecursionError) as exc:  # ValueError covers UnicodeDecodeError
        raise InputError(f"invalid JSON: {exc}", field="body") from None


def create_app(
    paths: ProjectPaths,
    *,
    mode: Mode = "sync",
    api_keys: Mapping[str, Sequence[str] | str] | None = None,
    max_pending: int = 1024,
    max_batch: int = MAX_BATCH,
    anchor_every_s: float | None = None,
    refresh_every_s: float = 2.0,
) -> FastAPI:
    """The service for one project; opens the ledger at startup, flushes it at shutdown.

    `anchor_every_s` (default: `[serving] anchor_every_s` in config.toml, else 0 = off)
    anchors the newest checkpoint on chain in the background; `refresh_every_s` is how
    often promotions by other processes are picked up (see `serving.background`).
    """
    paths.require_initialised()
    serving = _serving_config(paths)  # read once: keys, tiles access, anchor period
    key_ring = KeyRing(load_api_keys(paths, serving) if api_keys is None else api_keys)
    state: dict[str, DecisionService] = {}
    jobs: dict[str, BackgroundJobs] = {}
    witnesses: dict[str, ServicePublisher | None] = {}
    anchor_every = _anchor_every(serving) if anchor_every_s is None else anchor_every_s
    if anchor_every < 0 or refresh_every_s < 0:
        raise InputError("must be >= 0 seconds", field="anchor_every_s/refresh_every_s")
    local = threading.local()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        state["svc"] = service = DecisionService.open(paths, mode=mode, max_pending=max_pending)
        # Load the default model now rather than on the first request (a second or two).
        with contextlib.suppress(InputError):
            service.model_for(DEFAULT_ALIAS)
        jobs["jobs"] = BackgroundJobs.start(
            service, refresh_every_s=refresh_every_s, anchor_every_s=anchor_every
        )
        # `[witness] policy`: publish checkpoints only with the witnesses' quorum (issue 13)
        witnesses["pub"] = start_publisher(paths, service.ledger)
        try:
            yield
        finally:
            if witnesses.get("pub") is not None:
                witnesses.pop("pub").stop()  # type: ignore[union-attr]
            jobs.pop("jobs").stop()
            state.pop("svc").close()

    app = FastAPI(
        title="LedgerML decision service",
        version="1",
        lifespan=lifespan,
        description="Every decision is recorded in a verifiable RFC 9162 log.",
    )

    def svc() -> DecisionService:
        return state["svc"]

    def ledger_conn() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                f"file:{paths.ledger_db}?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
            local.conn = conn
        return conn

    def role(*allowed: frozenset[str]) -> Callable[[Request], Coroutine[Any, Any, str]]:
        ok = frozenset().union(*allowed)

        async def check(request: Request) -> str:  # async: no thread hop per request
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            key = key or request.headers.get("x-api-key")
            if not key:
                raise HTTPException(
                    401,
                    "an API key is required (Authorization: Bearer KEY)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            r = key_ring.role_of(key)
            if r is None:
                raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
            if r not in ok:
                raise HTTPException(403, f"role {r!r} may not do this")
            return r

        return check

    scorer = Depends(role(SCORE_ROLES))
    reader = Depends(role(READ_ROLES))
    # The tlog-tiles paths need a reader key unless `[serving] public_tiles = true`: a
    # bank's decision log is not public by default, but a witness or monitor that speaks
    # plain tlog-tiles (no API keys) can be let in. Entries hold commitments, not inputs.
    tiles_access = [] if _public_tiles(serving) else [reader]

    from ledgerml.audit.web import audit_router  # the auditor's pages, read-only

    app.include_router(audit_router(paths, role(READ_ROLES)))

    @app.exception_handler(InputError)
    async def _input_error(_: Request, exc: InputError) -> JSONResponse:
        return _problem(422, str(exc), exc.field)

    @app.exception_handler(VerificationError)
    async def _verify_error(_: Request, exc: VerificationError) -> JSONResponse:
        retry = getattr(exc, "retry_after_s", None)
        if retry is not None:  # the ledger's database is unreachable: nothing was recorded
            resp = _problem(503, str(exc))
            resp.headers["Retry-After"] = str(retry)
            return resp
        return _problem(500, f"verification failed: {exc}")

    @app.exception_handler(Backpressure)
    async def _busy(_: Request, exc: Backpressure) -> JSONResponse:
        m = svc().metrics
        with m.lock:
            m.rejected += 1
        resp = _problem(503, str(exc))
        resp.headers["Retry-After"] = "1"
        return resp

    # -- scoring -------------------------------------------------------------------

    @app.post("/v1/score", dependencies=[scorer], tags=["decisions"], response_class=JSONResponse)
    async def score(body: bytes = Depends(_raw_body)) -> Response:
        """Score one record (`features`) or a batch (`records`) and record each decision.

        422 names the offending field and nothing is appended. In `async` mode
        decisions are queued (`ledger_index` null) and committed within one group
        commit; 503 when the queue is full. Keep the returned `salt`: it is the
        only way to open the input commitment later.
        """
        doc = _parse_json(body)
        alias = doc.get("alias", DEFAULT_ALIAS) if isinstance(doc, dict) else DEFAULT_ALIAS
        if not isinstance(alias, str):
            raise InputError("must be a string", field="alias")
        s = svc()
        model = s.model_for(alias)
        req = parse_request(
            doc, model.model.features, max_batch=max_batch, categories=model.model.categories
        )
        # Scoring runs on the event loop (a fraction of a millisecond of CPU); the durable
        # commit is awaited, so requests arriving meanwhile join the same group commit.
        made = await s.score_async(req, model)
        out = [d.to_json() for d in made]
        doc_out = {"mode": mode, "decisions": out} if req.batch else {"mode": mode, **out[0]}
        return Response(orjson.dumps(doc_out), media_type="application/json")

    # -- reading -------------------------------------------------------------------

    @app.get("/v1/decisions/{decision_id}", dependencies=[reader], tags=["decisions"])
    def decision(decision_id: str) -> dict[str, Any]:
        """The entry, its inclusion proof and the checkpoint the proof verifies against."""
        s = svc()
        idx = s.lookup(decision_id)
        if idx is None:
            raise HTTPException(404, f"no committed decision {decision_id!r}")
        pub = witnesses.get("pub")
        newest = None if pub is None else pub.store.newest()  # (size, note) quorum-cosigned
        cosigned = newest is not None and newest[0] > idx
        note = newest[1] if newest is not None and cosigned else s.ledger.checkpoint()
        cp = Checkpoint.from_note(note)
        entry = s.ledger.entry(idx)
        proof = s.ledger.inclusion_proof(idx, cp.size)
        return {
            **({"cosigned": cosigned} if pub else {}),
            "decision_id": decision_id,
            "index": idx,
            "entry": json.loads(entry),
            "entry_b64": base64.b64encode(entry).decode(),
            "proof": proof.to_json(),
            "checkpoint": note,
        }

    @app.get(
        "/v1/checkpoint", dependencies=[reader], response_class=PlainTextResponse, tags=["log"]
    )
    def checkpoint() -> PlainTextResponse:
        """The latest signed checkpoint (C2SP tlog-checkpoint note)."""
        return PlainTextResponse(served_checkpoint())

    @app.get(
        "/checkpoint",
        dependencies=tiles_access,
        response_class=PlainTextResponse,
        tags=["tlog-tiles"],
    )
    def tlog_checkpoint() -> PlainTextResponse:
        """The tlog-tiles checkpoint path (same note as /v1/checkpoint)."""
        return PlainTextResponse(served_checkpoint(), headers={"Cache-Control": "no-cache"})

    def served_checkpoint() -> str:
        """The log-signed checkpoint, or with `[witness] policy` the newest cosigned one
        (503 until the quorum cosigned one: fail closed, unless `fail_open`)."""
        pub = witnesses.get("pub")
        if pub is None:
            return svc().ledger.checkpoint()
        note = pub.served(svc().ledger.checkpoint)
        if note is None:
            raise HTTPException(503, "no checkpoint with the witness quorum yet (fail closed)")
        return note

    @app.get("/v1/proofs/inclusion", dependencies=[reader], tags=["log"])
    def inclusion(index: int = Query(ge=0), size: int | None = Query(None, ge=1)) -> dict[str, Any]:
        return svc().ledger.inclusion_proof(index, size).to_json()

    @app.get("/v1/proofs/consistency", dependencies=[reader], tags=["log"])
    def consistency(
        first: int = Query(ge=0), second: int | None = Query(None, ge=0)
    ) -> dict[str, Any]:
        return svc().ledger.consistency_proof(first, second).to_json()

    @app.get("/tile/{path:path}", dependencies=tiles_access, tags=["tlog-tiles"])
    def tile(path: str, request: Request) -> Response:
        """C2SP tlog-tiles: `/tile/<L>/<N>[.p/<W>]` and `/tile/entries/<N>[.p/<W>]`.

        400 names the part of a malformed path (ASCII digits only, as the spec says). The
        path is read from the request itself: the router's `{path:path}` match silently
        drops a trailing newline (`000%0A` arrived here as `000`)."""
        whole = str(request.scope.get("path", ""))
        try:
            tp = parse_tile_path(whole[whole.index("/tile/") + 6 :] if "/tile/" in whole else path)
        except InputError as exc:
            return _problem(400, str(exc), exc.field)
        shared = svc().ledger
        if isinstance(shared, PostgresLedger):  # through the driver, one snapshot each
            data = read_tlog(shared, tp)
        else:
            conn = ledger_conn()
            conn.execute("BEGIN")
            try:
                data = read_tlog(SQLiteRows(conn), tp)
            finally:
                conn.execute("COMMIT")
        if data is None:
            raise HTTPException(404, "no such tile (yet)")
        return Response(
            data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
        )

    @app.get("/v1/models", dependencies=[reader], tags=["models"])
    def models() -> dict[str, Any]:
        """Aliases and the model each one serves, as the gate (ModelRegistry) allows them.

        No chain read here: the service reads the gate on refresh (see /healthz `gate`)."""
        s = svc()
        s.refresh(gate=False)
        out = {}
        for alias, cid in sorted(s.aliases.items()):
            item: dict[str, Any] = dict(s.gate.served.get(alias) or {"model_cid": cid})
            try:
                item["features"] = list(s.model_for(alias).model.features)
            except InputError as exc:
                item["error"] = str(exc)
            out[alias] = item
        return {"aliases": out}

    @app.post(
        "/v1/models",
        dependencies=[Depends(role(frozenset({"admin"})))],
        tags=["models"],
        status_code=201,
    )
    async def add_model(
        request: Request,
        filename: str = Query(..., min_length=1, max_length=255),
        data: list[str] = Query(...),
        target: str = Query(...),
        feature: list[str] | None = Query(None),
        time_column: str = Query("Time"),
        train_fraction: float = Query(0.8),
        name: str | None = Query(None),
    ) -> JSONResponse:
        """Record a model file trained elsewhere (admin): `ledgerml log-model` over HTTP.

        The body is the file's bytes (.skops, .onnx, LightGBM text, XGBoost UBJSON). It is
        read without running code; a file that cannot be read safely is a 422 naming it,
        and nothing is appended or stored."""
        from starlette.concurrency import run_in_threadpool

        from ledgerml.api import Project

        raw = await request.body()
        if len(raw) > MAX_MODEL_BYTES:
            raise InputError(f"is over {MAX_MODEL_BYTES:,} bytes", field="body")
        tcol = None if time_column.strip().lower() in ("", "none") else time_column

        def log() -> dict[str, Any]:
            run = Project(paths).start_run(
                data=data, time_column=tcol, train_fraction=train_fraction
            )
            with run:
                res = run.log_model(
                    raw, features=feature or None, target=target, name=name, filename=filename
                )
            return res.to_json()

        return JSONResponse(await run_in_threadpool(log), status_code=201)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, Any]:
        s = svc()
        return {
            "status": "ok",
            "mode": mode,
            "tree_size": s.ledger.size(),
            "queue_depth": s.logger.depth,
            "gate": s.gate.to_json(),
            "background": {name: st.to_json() for name, st in _job_status().items()},
            **({"witness": pub.loop.status()} if (pub := witnesses.get("pub")) else {}),
        }

    @app.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
    def metrics() -> PlainTextResponse:
        """Prometheus text format: decisions, request latency, queue depth."""
        return PlainTextResponse(
            _prometheus(svc(), _job_status()) + witness_metrics(witnesses.get("pub")),
            media_type="text/plain; version=0.0.4",
        )

    def _job_status() -> dict[str, JobStatus]:
        running = jobs.get("jobs")
        return running.status if running is not None else {}

    return app


def _serving_config(paths: ProjectPaths) -> Mapping[str, Any]:
    section = load_config(paths).get("serving", {})
    if not isinstance(section, dict):
        raise InputError("must be a table", field="serving")
    return section


def _public_tiles(serving: Mapping[str, Any]) -> bool:
    value = serving.get("public_tiles", False)
    if not isinstance(value, bool):
        raise InputError("must be true or false", field="serving.public_tiles")
    return value


def _anchor_every(serving: Mapping[str, Any]) -> float:
    value = serving.get("anchor_every_s", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InputError("must be a number of seconds >= 0", field="serving.anchor_every_s")
    return float(value)


async def _raw_body(request: Request) -> bytes:
    return await request.body()


def _prometheus(s: DecisionService, background: Mapping[str, JobStatus]) -> str:
    m = s.metrics
    lines = [
        "# HELP ledgerml_decisions_total Decisions scored and recorded, by outcome.",
        "# TYPE ledgerml_decisions_total counter",
    ]
    with m.lock:
        for outcome, n in sorted(m.decisions.items()):
            lines.append(f'ledgerml_decisions_total{{outcome="{outcome}"}} {n}')
        lines += [
            "# HELP ledgerml_score_seconds Time to score and record one request.",
            "# TYPE ledgerml_score_seconds histogram",
        ]
        cum = 0
        for b, c in zip((*m.buckets, float("inf")), m.counts, strict=True):
            cum += c
            le = "+Inf" if b == float("inf") else repr(b)
            lines.append(f'ledgerml_score_seconds_bucket{{le="{le}"}} {cum}')
        lines.append(f"ledgerml_score_seconds_sum {m.latency_sum}")
        lines.append(f"ledgerml_score_seconds_count {cum}")
        rejected = m.rejected
    lines += [
        "# HELP ledgerml_decision_queue_depth Decisions waiting for the durable commit.",
        "# TYPE ledgerml_decision_queue_depth gauge",
        f"ledgerml_decision_queue_depth {s.logger.depth}",
        "# HELP ledgerml_rejected_total Requests refused with 503 (queue full).",
        "# TYPE ledgerml_rejected_total counter",
        f"ledgerml_rejected_total {rejected}",
        "# HELP ledgerml_tree_size Entries in the ledger.",
        "# TYPE ledgerml_tree_size gauge",
        f"ledgerml_tree_size {s.ledger.size()}",
        "# HELP ledgerml_promotions_ignored_total model.promoted entries the gate did not confirm.",
        "# TYPE ledgerml_promotions_ignored_total counter",
        f"ledgerml_promotions_ignored_total {s.gate.ignored_total}",
        "# HELP ledgerml_gate_reads_total Read-only looks at the ModelRegistry contract.",
        "# TYPE ledgerml_gate_reads_total counter",
        f"ledgerml_gate_reads_total {s.gate.reads}",
        "# HELP ledgerml_gate_read_failures_total Gate reads that failed (retried later).",
        "# TYPE ledgerml_gate_read_failures_total counter",
        f"ledgerml_gate_read_failures_total {s.gate.failures}",
        "# HELP ledgerml_background_failures_total Failed runs of a background job.",
        "# TYPE ledgerml_background_failures_total counter",
        *(
            f'ledgerml_background_failures_total{{job="{name}"}} {st.failures}'
            for name, st in sorted(background.items())
        ),
    ]
    anchored = background.get("anchor")
    if anchored is not None and "anchored_tree_size" in anchored.last_result:
        lines += [
            "# HELP ledgerml_anchored_tree_size Tree size of the newest checkpoint on chain.",
            "# TYPE ledgerml_anchored_tree_size gauge",
            f"ledgerml_anchored_tree_size {anchored.last_result['anchored_tree_size']}",
        ]
    return "\n".join(lines) + "\n"
