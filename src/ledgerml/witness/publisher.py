"""The log's side of witnessing: get each new checkpoint cosigned, publish it only with quorum.

Why: a checkpoint signed only by the operator's key proves nothing against the operator.
The publisher sends every new checkpoint to the policy's witnesses (each with a consistency
proof from the size that witness last cosigned), merges the cosignature lines that verify,
and stores the result in `cosigned.db` only when the policy's quorum is met. What the
service serves as `checkpoint` is the newest stored one (fail closed); with `fail_open`
the newest log-signed checkpoint is served when witnesses lag (and says so).

    publisher = Publisher(ledger, policy, CosignedStore(paths.home / COSIGNED_DB))
    report = publisher.publish()          # PublishReport: published?, per-witness outcomes
    publisher.close()

A 409 from a witness carries the size it last cosigned: the publisher retries once from
there. A 422 means the witness holds a view our log does not extend (a rewrite, or a split
view shown to it): the report names the witness and both roots, from its monitoring
endpoint, and that witness's cosignature is simply missing.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledgerml.config import ProjectPaths, load_config
from ledgerml.crypto.note import NoteVerifier, parse_checkpoint_head, parse_note
from ledgerml.errors import InputError, LedgerMLError, VerificationError
from ledgerml.witness.client import SizeConflict, WitnessClient, WitnessRefused
from ledgerml.witness.policy import Policy, PolicyWitness, load_policy

COSIGNED_DB = "cosigned.db"
#: Held by the one process that publishes (see PublisherLoop).
PUBLISHER_LOCK = "witness-publisher.lock"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cosigned (size INTEGER PRIMARY KEY, root BLOB NOT NULL,
    note TEXT NOT NULL, cosigners TEXT NOT NULL, created REAL NOT NULL);
"""


class CheckpointSource(Protocol):
    """What the publisher needs of a log (`ledgerml.ledger.Ledger` has it)."""

    def checkpoint(self) -> str: ...

    def consistency_proof(self, first: int, second: int | None = None) -> Any: ...

    def root(self, size: int | None = None) -> bytes: ...


def _b64(root: bytes) -> str:
    return base64.b64encode(root).decode()


@dataclass(frozen=True)
class Outcome:
    """What one witness did with one checkpoint."""

    witness: str
    cosigned: bool
    status: int  # HTTP status; 0 when unreachable or not asked
    detail: str
    their_size: int | None = None
    their_root: str | None = None
    our_root_then: str | None = None  # our log's root at their size, when we have it

    def to_json(self) -> dict[str, Any]:
        return {
            "witness": self.witness,
            "cosigned": self.cosigned,
            "status": self.status,
            "detail": self.detail,
            "their_size": self.their_size,
            "their_root": self.their_root,
            "our_root_at_their_size": self.our_root_then,
        }


@dataclass(frozen=True)
class PublishReport:
    origin: str
    size: int
    root: str
    quorum: str
    published: bool
    cosigners: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    note: str = field(repr=False)
    why_not: str = ""  # the policy's refusal when not published

    @property
    def conflicts(self) -> tuple[Outcome, ...]:
        """Witnesses holding a view our log does not extend (422): evidence of a fork."""
        return tuple(o for o in self.outcomes if o.status == 422)

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root,
            "quorum": self.quorum,
            "published": self.published,
            "cosigners": list(self.cosigners),
            "outcomes": [o.to_json() for o in self.outcomes],
            "checkpoint": self.note if self.published else None,
            "why_not": self.why_not or None,
        }

    def lines(self) -> list[str]:
        """Human-readable summary; a conflict names the witness and both roots."""
        verdict = "published" if self.published else f"NOT published ({self.why_not})"
        out = [
            f"{self.origin} size {self.size} root {self.root}: {verdict}; quorum "
            f"{self.quorum!r}, cosigned by {', '.join(self.cosigners) or 'none'}"
        ]
        for o in self.outcomes:
            if o.cosigned:
                continue
            line = f"  {o.witness}: HTTP {o.status or '-'} {o.detail}"
            if o.their_root is not None:
                line += (
                    f" — it holds size {o.their_size} root {o.their_root}; we show size "
                    f"{self.size} root {self.root}"
                )
                if o.our_root_then is not None:
                    line += f" (and root {o.our_root_then} at size {o.their_size})"
            out.append(line)
        return out


class CosignedStore:
    """Cosigned checkpoints of the project, by size, in their own SQLite file."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        if read_only:
            if not path.exists():
                self._conn = None
                return
            uri = f"file:{path}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        else:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def save(self, size: int, root: bytes, note: str, cosigners: Sequence[str]) -> None:
        if self._conn is None:
            raise InputError("the cosigned store is read-only", field="cosigned")
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO cosigned(size, root, note, cosigners, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (size, root, note, ",".join(cosigners), time.time()),
            )

    def newest(self) -> tuple[int, str] | None:
        """(size, note) of the newest cosigned checkpoint, or None."""
        if self._conn is None:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT size, note FROM cosigned ORDER BY size DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def note_at(self, size: int) -> str | None:
        """The stored checkpoint of exactly `size`, or None."""
        if self._conn is None:
            return None
        with self._lock:
            row = self._conn.execute("SELECT note FROM cosigned WHERE size=?", (size,)).fetchone()
        return None if row is None else str(row[0])

    def cosigners(self) -> list[tuple[int, tuple[str, ...]]]:
        """(size, cosigners) of every stored checkpoint, oldest first (no notes read)."""
        if self._conn is None:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT size, cosigners FROM cosigned ORDER BY size"
            ).fetchall()
        return [(int(s), tuple(c.split(",")) if c else ()) for s, c in rows]

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest `limit` cosigned checkpoints: size, root, cosigners, when stored."""
        if self._conn is None:
            return []
        with self._lock:
            rows = self._conn.execute(
                "SELECT size, root, cosigners, created FROM cosigned ORDER BY size DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "size": int(size),
                "root": _b64(bytes(root)),
                "cosigners": cosigners.split(",") if cosigners else [],
                "stored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
            }
            for size, root, cosigners, created in rows
        ]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class Publisher:
    """Sends checkpoints to every witness of a policy in parallel; see the module doc."""

    def __init__(
        self,
        log: CheckpointSource,
        policy: Policy,
        store: CosignedStore,
        *,
        log_verifiers: Sequence[NoteVerifier] = (),
        timeout_s: float = 5.0,
    ) -> None:
        self.log, self.policy, self.store = log, policy, store
        self.log_verifiers = list(log_verifiers)
        self.witnesses = [w for w in policy.witnesses if w.url]
        if not self.witnesses and policy.quorum != "none":
            raise InputError("no witness in the policy has a URL to send to", field="policy")
        self.clients = {w.name: WitnessClient(w.url or "", timeout_s) for w in self.witnesses}
        self._pool = ThreadPoolExecutor(max(1, len(self.witnesses)), "witness")
        #: the size each witness last cosigned, as far as we know (a 409 corrects it)
        self.sizes: dict[str, int] = {}
        for size, cosigners in store.cosigners():
            for name in cosigners:
                self.sizes[name] = max(self.sizes.get(name, 0), size)
        self.failures: dict[str, int] = {w.name: 0 for w in self.witnesses}
        self.last: PublishReport | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for c in self.clients.values():
            c.close()

    def publish(self, note: str | None = None) -> PublishReport:
        """Get `note` (default: the log's current checkpoint) cosigned; store it on quorum."""
        note = self.log.checkpoint() if note is None else note
        origin, size, root = parse_checkpoint_head(parse_note(note).text)
        answers = list(self._pool.map(lambda w: self._ask(w, note, size), self.witnesses))
        outcomes = tuple(o for o, _ in answers)
        merged = note + "".join(lines for _, lines in answers)
        published, cosigners, why = False, tuple(o.witness for o in outcomes if o.cosigned), ""
        try:
            verified = self.policy.verify(merged, log_verifiers=self.log_verifiers)
        except VerificationError as exc:
            why = str(exc)
        else:
            published, cosigners = True, verified.cosigners
            self.store.save(size, root, merged, cosigners)
        for o in outcomes:
            if not o.cosigned:
                self.failures[o.witness] = self.failures.get(o.witness, 0) + 1
        report = PublishReport(
            origin,
            size,
            _b64(root),
            self.policy.quorum,
            published,
            cosigners,
            outcomes,
            merged,
            why,
        )
        self.last = report
        return report

    def _ask(self, w: PolicyWitness, note: str, size: int) -> tuple[Outcome, str]:
        """One witness: from the size we think it holds, again from the one a 409 names;
        the outcome and the valid cosignature lines ("" without)."""
        client = self.clients[w.name]
        old = min(self.sizes.get(w.name, 0), size)
        for _ in range(3):
            try:
                proof = self.log.consistency_proof(old, size).hashes if old else ()
                lines = client.add_checkpoint(old=old, proof=proof, note=note)
            except SizeConflict as conflict:
                self.sizes[w.name] = conflict.size
                if conflict.size > size:
                    reason = f"it cosigned size {conflict.size}, larger than ours"
                    return self._conflict(w, 409, reason, note), ""
                old = conflict.size
                continue
            except WitnessRefused as refused:
                if refused.status == 422:
                    return self._conflict(w, 422, refused.reason, note), ""
                return Outcome(w.name, False, refused.status, refused.reason), ""
            except LedgerMLError as exc:  # no proof from that size (not in our log)
                return Outcome(w.name, False, 0, f"no consistency proof from {old}: {exc}"), ""
            good = _verified_lines(w, note, lines)
            if not good:
                return Outcome(w.name, False, 200, "answer holds no valid cosignature"), ""
            self.sizes[w.name] = size
            return Outcome(w.name, True, 200, "cosigned"), good
        return Outcome(w.name, False, 409, "size kept changing (another log writer?)"), ""

    def _conflict(self, w: PolicyWitness, status: int, reason: str, note: str) -> Outcome:
        """A refusal that may be evidence of a fork: fetch what the witness holds."""
        theirs = self.clients[w.name].latest_checkpoint(parse_checkpoint_head(note)[0])
        size = root = ours = None
        if theirs is not None:
            try:
                _, size, raw = parse_checkpoint_head(parse_note(theirs).text)
                root = _b64(raw)
                ours = _b64(self.log.root(size))
            except LedgerMLError:
                pass
        return Outcome(w.name, False, status, reason, size, root, ours)


def _verified_lines(w: PolicyWitness, note: str, lines: str) -> str:
    """The lines of a witness's answer that are valid cosignatures by its pinned key."""
    text = parse_note(note).text.encode()
    keep = []
    for line in lines.splitlines(keepends=True):
        try:
            sig = parse_note("x\n\n" + line).signatures[0]
        except LedgerMLError:
            continue
        v = w.verifier
        if sig.name == v.name and sig.key_id == v.key_id and v.verify(text, sig.signature):
            keep.append(line if line.endswith("\n") else line + "\n")
    return "".join(keep)


# --- wiring for a project ---------------------------------------------------------------


@dataclass(frozen=True)
class WitnessSettings:
    """`[witness]` in config.toml."""

    policy: Path
    fail_open: bool = False
    publish_every_s: float = 1.0
    timeout_s: float = 5.0


def witness_settings(paths: ProjectPaths) -> WitnessSettings | None:
    """The project's `[witness]` settings, or None when no policy is configured."""
    section = load_config(paths).get("witness", {})
    value = section.get("policy")
    if not value:
        return None
    policy = Path(str(value)).expanduser()
    return WitnessSettings(
        policy if policy.is_absolute() else paths.home / policy,
        bool(section.get("fail_open", False)),
        float(section.get("publish_every_s", 1.0)),
        float(section.get("timeout_s", 5.0)),
    )


def cosigned_store(paths: ProjectPaths, *, read_only: bool = False) -> CosignedStore:
    return CosignedStore(paths.home / COSIGNED_DB, read_only=read_only)


def publish_once(paths: ProjectPaths, *, policy_path: str | None = None) -> PublishReport:
    """One publisher round for a project (`ledgerml witness publish`)."""
    from ledgerml.ledger.project import log_verifiers, open_ledger

    settings = witness_settings(paths)
    if policy_path is None and settings is None:
        raise InputError("give --policy or set [witness] policy in config.toml", field="policy")
    policy = load_policy(policy_path or str(settings.policy))  # type: ignore[union-attr]
    timeout = settings.timeout_s if settings else 5.0
    store = cosigned_store(paths)
    with open_ledger(paths) as ledger:
        pub = Publisher(
            ledger, policy, store, log_verifiers=log_verifiers(paths), timeout_s=timeout
        )
        try:
            return pub.publish()
        finally:
            pub.close()
            store.close()


def served_checkpoint(
    store: CosignedStore, newest_signed: Callable[[], str], *, fail_open: bool
) -> str | None:
    """What to serve as `checkpoint`: the newest cosigned one (None if none yet), or with
    `fail_open` the newest log-signed one when it is newer."""
    cosigned = store.newest()
    if fail_open:
        note = newest_signed()
        if cosigned is None or parse_checkpoint_head(parse_note(note).text)[1] > cosigned[0]:
            return note
    return None if cosigned is None else cosigned[1]


class PublisherLoop:
    """The background publisher: publish whenever the log grew or the last round failed.

    With `lock` (a file), only the process holding an exclusive lock on it publishes: with
    `serve --workers N` every worker runs a loop, one of them leads, the others serve what
    it stores in cosigned.db and take over when it exits.
    """

    def __init__(
        self,
        publisher: Publisher,
        size: Callable[[], int],
        every_s: float,
        *,
        lock: Path | None = None,
    ) -> None:
        self.publisher, self._size, self.every_s = publisher, size, every_s
        self._lock_path = lock
        self._lock_fd: int | None = None
        self.published_size = -1
        self.rounds = 0
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witness-publisher", daemon=True)

    def start(self) -> PublisherLoop:
        self._thread.start()
        return self

    def poke(self) -> None:
        """Publish now (a new checkpoint was made) instead of at the next period."""
        self._wake.set()

    @property
    def leader(self) -> bool:
        return self._lock_path is None or self._lock_fd is not None

    def _try_lead(self) -> bool:
        """Take the publisher lock if free (non-blocking); kept until stop()."""
        if self.leader:
            return True
        import fcntl

        assert self._lock_path is not None
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._try_lead():
                    self.step()
            except Exception as exc:  # counted and shown in /healthz; retried next period
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._wake.wait(self.every_s)
            self._wake.clear()

    def step(self) -> PublishReport | None:
        """One round, when the log grew since the last published checkpoint."""
        if self._size() == self.published_size:
            return None
        self.rounds += 1
        report = self.publisher.publish()
        self.last_error = None
        if report.published:
            self.published_size = report.size
        return report

    def status(self) -> dict[str, Any]:
        last = self.publisher.last
        newest = self.publisher.store.newest()
        return {
            "leader": self.leader,
            "rounds": self.rounds,
            "errors": self.errors,
            "last_error": self.last_error,
            "cosigned_tree_size": None if newest is None else newest[0],
            "last_round": None
            if last is None
            else {
                "size": last.size,
                "published": last.published,
                "cosigners": list(last.cosigners),
                "conflicts": [o.to_json() for o in last.conflicts],
            },
            "witness_failures": dict(self.publisher.failures),
        }

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.publisher.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock: another worker may lead
            self._lock_fd = None


@dataclass(frozen=True)
class ServicePublisher:
    """What the decision service holds when `[witness] policy` is set."""

    loop: PublisherLoop
    store: CosignedStore
    fail_open: bool

    def served(self, newest_signed: Callable[[], str]) -> str | None:
        return served_checkpoint(self.store, newest_signed, fail_open=self.fail_open)

    def stop(self) -> None:
        self.loop.stop()
        self.store.close()


def start_publisher(paths: ProjectPaths, log: CheckpointSource) -> ServicePublisher | None:
    """Start the background publisher for a project's log; None without a witness policy
    (then nothing changes: the service serves the log-signed checkpoint as before)."""
    from ledgerml.ledger.project import log_verifiers

    settings = witness_settings(paths)
    if settings is None:
        return None
    policy = load_policy(str(settings.policy))
    store = cosigned_store(paths)
    publisher = Publisher(
        log, policy, store, log_verifiers=log_verifiers(paths), timeout_s=settings.timeout_s
    )
    size = getattr(log, "size", None)
    if not callable(size):
        raise InputError("the log has no size()", field="log")
    every = max(settings.publish_every_s, 0.05)
    loop = PublisherLoop(publisher, size, every, lock=paths.home / PUBLISHER_LOCK).start()
    return ServicePublisher(loop, store, settings.fail_open)


def witness_metrics(pub: ServicePublisher | None) -> str:
    """Prometheus lines for /metrics: per-witness failures, rounds, cosigned tree size."""
    if pub is None:
        return ""
    status = pub.loop.status()
    lines = [
        "# HELP ledgerml_witness_failures_total Rounds in which a witness did not cosign.",
        "# TYPE ledgerml_witness_failures_total counter",
        *(
            f'ledgerml_witness_failures_total{{witness="{name}"}} {n}'
            for name, n in sorted(status["witness_failures"].items())
        ),
        "# HELP ledgerml_witness_rounds_total Publisher rounds (a new checkpoint sent out).",
        "# TYPE ledgerml_witness_rounds_total counter",
        f"ledgerml_witness_rounds_total {status['rounds']}",
        "# HELP ledgerml_witness_errors_total Publisher rounds that failed with an error.",
        "# TYPE ledgerml_witness_errors_total counter",
        f"ledgerml_witness_errors_total {status['errors']}",
    ]
    if status["cosigned_tree_size"] is not None:
        lines += [
            "# HELP ledgerml_cosigned_tree_size Size of the newest quorum-cosigned checkpoint.",
            "# TYPE ledgerml_cosigned_tree_size gauge",
            f"ledgerml_cosigned_tree_size {status['cosigned_tree_size']}",
        ]
    return "\n".join(lines) + "\n"


def newest_cosigned(paths: ProjectPaths, policy: Policy) -> tuple[str, tuple[str, ...]]:
    """The newest stored cosigned checkpoint, verified against `policy` (log signature and
    quorum), with its cosigners. Fails closed: none stored, or not enough cosignatures, is a
    VerificationError."""
    from ledgerml.ledger.project import log_verifiers

    store = cosigned_store(paths, read_only=True)
    try:
        newest = store.newest()
    finally:
        store.close()
    if newest is None:
        raise VerificationError(
            f"no cosigned checkpoint in {paths.home / COSIGNED_DB}: nothing to check the policy "
            "against (run `ledgerml witness publish` or `serve` with [witness] policy)"
        )
    verified = policy.verify(newest[1], log_verifiers=log_verifiers(paths))
    return newest[1], verified.cosigners


def cosigned_note_at(paths: ProjectPaths, size: int) -> str | None:
    """The stored quorum-cosigned checkpoint of exactly `size`, if any (bundles carry it)."""
    store = cosigned_store(paths, read_only=True)
    try:
        return store.note_at(size)
    finally:
        store.close()


def witness_overview(paths: ProjectPaths, limit: int = 50) -> dict[str, Any]:
    """For the auditor's pages: the policy's witnesses and quorum, and which witnesses
    cosigned each of the newest stored checkpoints."""
    settings = witness_settings(paths)
    policy = None if settings is None else load_policy(str(settings.policy))
    store = cosigned_store(paths, read_only=True)
    try:
        history = store.history(limit)
    finally:
        store.close()
    return {
        "policy": None
        if policy is None
        else {
            "quorum": policy.quorum,
            "witnesses": [{"name": w.name, "vkey": w.verifier.vkey()} for w in policy.witnesses],
            "groups": [
                {"name": g.name, "threshold": g.threshold, "members": list(g.members)}
                for g in policy.groups
            ],
        },
        "fail_open": bool(settings and settings.fail_open),
        "cosigned": history,
    }
