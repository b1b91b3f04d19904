"""Audit bundles: the entries an examiner asked for, with everything needed to check them
offline and without LedgerML (docs/audit.md describes the layout).

    with AuditView.open(paths) as view:
        sel = select_model(view, "champion")          # or select_decisions / select_all
        export_bundle(view, sel, Path("bundle.zip"), artifacts=False)
    report = verify_bundle(Path("bundle.zip"))        # BundleReport; .ok, .problems name files

Every file is listed in `manifest.json` with its SHA-256, and the manifest's digest is
signed by the log's Ed25519 key in `manifest.note` (a C2SP signed note), so a change
to any byte of any file fails verification naming that file. `tools/verify_bundle.py`
performs the same checks with only the standard library and `cryptography`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ledgerml.audit.trace import trace_model
from ledgerml.audit.view import AuditView
from ledgerml.crypto.note import SIG_ED25519, NoteVerifier, sign_note, verify_note
from ledgerml.errors import InputError, LedgerMLError, VerificationError
from ledgerml.faults import crash_point
from ledgerml.ledger import merkle
from ledgerml.ledger.log import Checkpoint
from ledgerml.ledger.project import log_keys
from ledgerml.witness.policy import Policy
from ledgerml.witness.publisher import cosigned_note_at

FORMAT = "ledgerml-audit-bundle/1"
MANIFEST = "manifest.json"
MANIFEST_NOTE = "manifest.note"
CHECKPOINT = "checkpoint.note"
KEYS = "keys.txt"
CIDS = "artifacts/cids.json"
DEPLOYMENT = "chain/deployment.json"
MAX_ENTRIES = 1_000_000
RAW_LEAF_MAX = 256 * 1024
#: body fields that name artifacts, and what the artifact is
ARTIFACT_FIELDS = {
    "cid": "artifact",
    "model_cid": "model",
    "card_cid": "model card (JSON)",
    "markdown_cid": "model card (Markdown)",
    "dataset_cid": "data set",
    "window_cid": "monitoring window",
    "aggregate_cid": "federated aggregate",
}
_ENTRY_RE = re.compile(r"^entries/(0|[1-9][0-9]*)\.json$")
_PROOF_RE = re.compile(r"^proofs/(0|[1-9][0-9]*)\.json$")
_RECEIPT_RE = re.compile(r"^chain/receipts/(0x[0-9a-f]{64})\.json$")
_ARTIFACT_RE = re.compile(r"^artifacts/(b[a-z2-7]{58,})$")


# --- selection -----------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which ledger entries go into a bundle, and why (recorded in the manifest)."""

    description: dict[str, Any] = field(hash=False)
    indices: tuple[int, ...]


def _anchor_indices(view: AuditView) -> list[int]:
    return view.index.by_type("checkpoint.anchored")


def select_model(view: AuditView, model: str) -> Selection:
    """A model's lineage (CID or promoted alias) and every anchor."""
    view.refresh()
    t = trace_model(view, model)
    idx = {s.entry.index for s in t.steps} | set(_anchor_indices(view))
    return Selection({"model": t.model_cid, "asked": model}, tuple(sorted(idx)))


def parse_range(text: str) -> tuple[str, str]:
    """`FROM..TO`: ledger indices (`100..200`, TO exclusive) or RFC 3339 dates/times."""
    lo, sep, hi = text.partition("..")
    if not sep or not lo or not hi:
        raise InputError(f"{text!r} is not FROM..TO", field="--decisions")
    if lo.isdigit() and hi.isdigit():
        if int(lo) >= int(hi):
            raise InputError(f"empty range {text!r} (FROM must be < TO)", field="--decisions")
        return lo, hi
    for part in (lo, hi):
        try:
            datetime.fromisoformat(part.replace("Z", "+00:00"))
        except ValueError:
            raise InputError(
                f"{part!r} is neither a ledger index nor an RFC 3339 date/time",
                field="--decisions",
            ) from None
    if lo >= hi:
        raise InputError(f"empty range {text!r} (FROM must be before TO)", field="--decisions")
    return lo, hi


def _time_key(text: str) -> str:
    """An RFC 3339 bound in the entries' own `YYYY-MM-DDTHH:MM:SS.ffffffZ` form."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def select_decisions(view: AuditView, text: str) -> Selection:
    """Decisions in an index or time range, the lineage of every model they used, anchors."""
    view.refresh()
    lo, hi = parse_range(text)
    if lo.isdigit():
        chosen = view.index.by_type("decision.recorded", start=int(lo), limit=int(hi) - int(lo))
        chosen = [i for i in chosen if i < int(hi)]
    else:
        chosen = view.index.in_time_range("decision.recorded", _time_key(lo), _time_key(hi))
    if not chosen:
        raise InputError(f"no decisions in {text!r}", field="--decisions")
    if len(chosen) > MAX_ENTRIES:
        raise InputError(f"{len(chosen):,} decisions; narrow the range", field="--decisions")
    models = {orjson.loads(view.index.entry(i))["body"]["model_cid"] for i in chosen}
    idx = set(chosen) | set(_anchor_indices(view))
    for m in sorted(models):
        idx |= {s.entry.index for s in trace_model(view, m).steps}
    return Selection({"decisions": text, "models": sorted(models)}, tuple(sorted(idx)))


def select_all(view: AuditView) -> Selection:
    """Every entry covered by the newest signed checkpoint."""
    view.refresh()
    n = view.checkpoint.size
    if n > MAX_ENTRIES:
        raise InputError(f"the log has {n:,} entries; export a selection", field="--all")
    return Selection({"all": True}, tuple(range(n)))


# --- export ----------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _artifact_cids(bodies: Iterable[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for body in bodies:
        for name, role in ARTIFACT_FIELDS.items():
            v = body.get(name)
            if isinstance(v, str) and v.startswith("b"):
                out.setdefault(v, role)
        for v in body.get("dataset_cids", []) or []:
            out.setdefault(v, "data set")
        for name, v in (body.get("plots") or {}).items():
            out.setdefault(v, f"plot {name}")
    return out


def _receipts(view: AuditView, tx_hashes: list[str]) -> tuple[dict[str, bytes], str | None]:
    """Transaction receipts as JSON (from the chain, if it can be read now)."""
    if not tx_hashes:
        return {}, None
    try:
        from web3 import Web3

        from ledgerml.mlops import has_deployment, project_chain

        if not has_deployment(view.paths):
            return {}, "no chain deployment"
        out = {}
        with project_chain(view.paths) as chain:
            for tx in tx_hashes:
                receipt = chain.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
                doc = json.loads(Web3.to_json(receipt))  # type: ignore[arg-type]
                out[tx] = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
        return out, None
    except Exception as exc:  # receipts are optional; say why they are missing
        return {}, f"receipts not read from the chain: {type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class ExportResult:
    path: Path
    entries: int
    files: int
    tree_size: int
    root: str
    artifacts_included: int
    receipts: int
    receipts_note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "entries": self.entries,
            "files": self.files,
            "tree_size": self.tree_size,
            "root": self.root,
            "artifacts_included": self.artifacts_included,
            "receipts": self.receipts,
            "receipts_note": self.receipts_note,
        }


def _bundle_files(
    view: AuditView, selection: Selection, *, artifacts: bool
) -> tuple[dict[str, bytes], dict[str, Any]]:
    cp = view.checkpoint
    if not cp.signature_ok:
        raise VerificationError(f"the newest checkpoint does not verify: {cp.problem}")
    files: dict[str, bytes] = {
        # the witnesses' quorum-cosigned note for this size when there is one (issue 13)
        CHECKPOINT: (cosigned_note_at(view.paths, cp.size) or cp.note).encode(),
        KEYS: "".join(v + "\n" for v in view.vkeys()).encode(),
    }
    bodies: list[dict[str, Any]] = []
    txs: list[str] = []
    for i in selection.indices:
        e = view.prove(i)
        if e.proof is None or not e.verified:
            raise VerificationError(f"entry {i} does not verify against the checkpoint")
        files[f"entries/{i}.json"] = e.entry
        files[f"proofs/{i}.json"] = orjson.dumps(e.proof.to_json(), option=orjson.OPT_INDENT_2)
        bodies.append(e.body)
        tx = e.body.get("tx_hash")
        if isinstance(tx, str) and tx not in txs:
            txs.append(tx)
    cids = _artifact_cids(bodies)
    included = 0
    listing = []
    store = None
    if artifacts:
        from ledgerml.storage import open_store

        store = open_store(view.paths)
    for cid, role in sorted(cids.items()):
        inc = False
        if store is not None and store.has(cid):
            files[f"artifacts/{cid}"] = store.read_bytes(cid)
            inc, included = True, included + 1
        listing.append({"cid": cid, "role": role, "included": inc})
    files[CIDS] = orjson.dumps(listing, option=orjson.OPT_INDENT_2)
    deployment = view.paths.chain / "deployment.json"
    if deployment.is_file():
        files[DEPLOYMENT] = deployment.read_bytes()
    receipts, note = _receipts(view, txs)
    for tx, data in receipts.items():
        files[f"chain/receipts/{tx}.json"] = data
    meta = {
        "artifacts_included": included,
        "receipts": len(receipts),
        "receipts_note": note,
    }
    return files, meta


def export_bundle(
    view: AuditView, selection: Selection, out: Path, *, artifacts: bool = False
) -> ExportResult:
    """Write the bundle as a directory, or as a zip when `out` ends in `.zip`."""
    if out.exists() and (out.is_file() or any(out.iterdir())):
        raise InputError(f"{out} already exists; choose a new path", field="-o")
    if not selection.indices:
        raise InputError("nothing selected", field="selection")
    files, meta = _bundle_files(view, selection, artifacts=artifacts)
    cp = view.checkpoint
    manifest = {
        "format": FORMAT,
        "origin": view.origin,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "selection": selection.description,
        "checkpoint": {"file": CHECKPOINT, "size": cp.size, "root": cp.root.hex()},
        "entries": list(selection.indices),
        "receipts_note": meta["receipts_note"],
        "files": {
            name: {"sha256": _sha(data), "size": len(data)} for name, data in sorted(files.items())
        },
    }
    manifest_bytes = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    signers = [s for s in log_keys(view.paths).note_signers if s.sig_type == SIG_ED25519]
    note_text = f"{FORMAT}\n{view.origin}\n{_sha(manifest_bytes)}\n"
    files[MANIFEST] = manifest_bytes
    files[MANIFEST_NOTE] = sign_note(note_text, signers).encode()
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                zf.writestr(zipfile.ZipInfo(name, (2026, 1, 1, 0, 0, 0)), files[name])
                crash_point("bundle.export.partial")
        tmp.replace(out)
    else:  # written beside, then renamed: a failed export leaves no half-written bundle
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for name, data in files.items():
                p = tmp_dir / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            tmp_dir.chmod(0o755)  # mkdtemp makes it 0700; a bundle is meant to be handed on
            if out.exists():
                out.rmdir()  # empty, checked above
            tmp_dir.rename(out)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
    return ExportResult(
        out,
        len(selection.indices),
        len(files),
        cp.size,
        cp.root.hex(),
        meta["artifacts_included"],
        meta["receipts"],
        meta["receipts_note"],
    )


def bundle_bytes(view: AuditView, selection: Selection) -> bytes:
    """The bundle as zip bytes in memory (the web pages' download)."""
    with tempfile.TemporaryDirectory(prefix="ledgerml-bundle-") as tmp:
        path = Path(tmp) / "bundle.zip"
        export_bundle(view, selection, path)
        return path.read_bytes()


# --- verification -------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleProblem:
    file: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"file": self.file, "detail": self.detail}


@dataclass(frozen=True)
class BundleReport:
    path: str
    problems: tuple[BundleProblem, ...]
    entries: int = 0
    tree_size: int | None = None
    root: str | None = None
    artifacts_checked: int = 0
    receipts_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": self.path,
            "entries": self.entries,
            "tree_size": self.tree_size,
            "root": self.root,
            "artifacts_checked": self.artifacts_checked,
            "receipts_checked": self.receipts_checked,
            "problems": [p.to_json() for p in self.problems],
        }


class _Failed(Exception):
    def __init__(self, file: str, detail: str) -> None:
        super().__init__(f"{file}: {detail}")
        self.file, self.detail = file, detail


#: What zipfile raises on a malformed or hostile archive (forged version or method fields,
#: encryption flag, truncated deflate stream); found by fuzzing, each was an "internal error".
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, RuntimeError,
               EOFError, LookupError, ArithmeticError, struct.error, zlib.error)  # fmt: skip


def read_bundle(path: Path) -> dict[str, bytes]:
    """All files of a bundle directory or zip; InputError when it is not a bundle at all."""
    files: dict[str, bytes] = {}
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                files[p.relative_to(path).as_posix()] = p.read_bytes()
    elif path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    try:
                        files[info.filename] = zf.read(info)
                    except _ZIP_ERRORS as exc:
                        raise _Failed(
                            info.filename, f"cannot be read from the zip: {exc}"
                        ) from None
        except _ZIP_ERRORS as exc:
            raise InputError(
                f"{path} is not a bundle (zip or directory): {exc}", field="PATH"
            ) from None
    else:
        raise InputError(f"{path} does not exist", field="PATH")
    if MANIFEST not in files:
        raise InputError(f"{path} is not an audit bundle: no {MANIFEST}", field="PATH")
    return files


def _json(files: dict[str, bytes], name: str) -> Any:
    try:
        return json.loads(files[name])
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Failed(name, f"is not valid JSON: {exc}") from None


def _vkeys(files: dict[str, bytes]) -> list[NoteVerifier]:
    if KEYS not in files:
        raise _Failed(KEYS, "is missing")
    try:
        lines = files[KEYS].decode().split("\n")
    except UnicodeDecodeError:
        raise _Failed(KEYS, "is not UTF-8") from None
    if lines[-1] != "" or not lines[:-1]:
        raise _Failed(KEYS, "must be one verifier key per line, ending in a newline")
    try:
        return [NoteVerifier.from_vkey(line) for line in lines[:-1]]
    except LedgerMLError as exc:
        raise _Failed(KEYS, str(exc)) from None


def _verify(
    files: dict[str, bytes], pinned: tuple[str, ...] = (), policy: Policy | None = None
) -> BundleReport:
    verifiers = _vkeys(files)
    if pinned:
        try:
            verifiers = [NoteVerifier.from_vkey(v) for v in pinned]
        except LedgerMLError as exc:
            raise InputError(f"not a verifier key: {exc}", field="--vkey") from None
    ed = [v for v in verifiers if v.sig_type == SIG_ED25519]
    if not ed:
        raise _Failed(KEYS, "holds no Ed25519 key to check manifest.note with")
    if MANIFEST_NOTE not in files:
        raise _Failed(MANIFEST_NOTE, "is missing")
    try:
        note = verify_note(files[MANIFEST_NOTE].decode(), ed)
    except (LedgerMLError, UnicodeDecodeError) as exc:
        raise _Failed(MANIFEST_NOTE, f"signature does not verify: {exc}") from None
    lines = note.text.split("\n")
    if len(lines) != 4 or lines[0] != FORMAT or not re.fullmatch(r"[0-9a-f]{64}", lines[2]):
        raise _Failed(MANIFEST_NOTE, f"is not a {FORMAT} note")
    if _sha(files[MANIFEST]) != lines[2]:
        raise _Failed(MANIFEST, "SHA-256 differs from the digest signed in manifest.note")
    manifest = _json(files, MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise _Failed(MANIFEST, "is not a bundle manifest")
    if manifest.get("format") != FORMAT or manifest.get("origin") != lines[1]:
        raise _Failed(MANIFEST, "format or origin differs from manifest.note")
    listed: dict[str, Any] = manifest.get("files", {})
    for name in sorted(files):
        if name in (MANIFEST, MANIFEST_NOTE):
            continue
        if name not in listed:
            raise _Failed(name, "is not listed in manifest.json")
        if _sha(files[name]) != listed[name].get("sha256"):
            raise _Failed(name, "SHA-256 differs from manifest.json")
    for name in sorted(listed):
        if name not in files:
            raise _Failed(name, "is listed in manifest.json but missing")
    # the checkpoint every proof refers to
    try:
        cp_text = files[CHECKPOINT].decode()
        verify_note(cp_text, verifiers)
        cp = Checkpoint.from_note(cp_text)
    except (LedgerMLError, UnicodeDecodeError, KeyError) as exc:
        raise _Failed(CHECKPOINT, f"does not verify with keys.txt: {exc}") from None
    if cp.origin != manifest["origin"]:
        raise _Failed(CHECKPOINT, f"origin {cp.origin!r} is not the bundle's")
    if policy is not None:  # the witnesses' quorum on the checkpoint every proof relies on
        try:
            policy.verify(cp_text, log_verifiers=verifiers)
        except LedgerMLError as exc:
            raise _Failed(CHECKPOINT, f"does not meet the witness policy: {exc}") from None
    # entries and their proofs
    entries = sorted(int(m.group(1)) for n in files if (m := _ENTRY_RE.match(n)))
    if entries != sorted(manifest.get("entries", [])):
        raise _Failed(MANIFEST, "its entry list differs from the entries/ files")
    tx_in_entries: set[str] = set()
    for i in entries:
        ename, pname = f"entries/{i}.json", f"proofs/{i}.json"
        data = files[ename]
        leaf = merkle.leaf_hash(data)
        try:
            doc = json.loads(data)
            tx = doc.get("body", {}).get("tx_hash")
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise _Failed(ename, "is not a JSON ledger entry") from None
        if isinstance(tx, str):
            tx_in_entries.add(tx)
        if pname not in files:
            raise _Failed(pname, "is missing")
        proof = _json(files, pname)
        try:
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            claimed = bytes.fromhex(proof["leaf_hash"])
            index, size = int(proof["leaf_index"]), int(proof["tree_size"])
        except (KeyError, TypeError, ValueError):
            raise _Failed(pname, "is not an inclusion proof") from None
        if index != i or size != cp.size:
            raise _Failed(pname, f"proves index {index} at size {size}, not {i} at {cp.size}")
        if claimed != leaf:
            raise _Failed(ename, "does not hash to the leaf its proof names")
        if not merkle.verify_inclusion(leaf, i, cp.size, hashes, cp.root):
            raise _Failed(pname, "does not lead to the checkpoint's root")
    # receipts: each for a transaction some bundled entry names, and successful
    receipts = 0
    for name in sorted(files):
        m = _RECEIPT_RE.match(name)
        if not m:
            continue
        r = _json(files, name)
        if (
            str(r.get("transactionHash", "")).lower() != m.group(1)
            or m.group(1) not in tx_in_entries
        ):
            raise _Failed(name, "is not the receipt of a transaction named by a bundled entry")
        if r.get("status") != 1:
            raise _Failed(name, "records a failed transaction")
        receipts += 1
    # artifacts: the bytes hash to their CID
    from ledgerml.storage import cid_of_bytes

    checked = 0
    for name in sorted(files):
        m = _ARTIFACT_RE.match(name)
        if m and cid_of_bytes(files[name]) != m.group(1):
            raise _Failed(name, "bytes do not hash to this CID")
        checked += bool(m)
    return BundleReport("", (), len(entries), cp.size, cp.root.hex(), checked, receipts)


def verify_bundle(
    path: Path, pinned: tuple[str, ...] = (), policy: Policy | None = None
) -> BundleReport:
    """Check a bundle offline; problems name the file. InputError if it is not a bundle.

    `pinned`: verifier keys obtained out of band; without them keys.txt is trusted, and the
    bundle then proves integrity but not who produced it. `policy`: a witness policy whose
    quorum must have cosigned the bundle's checkpoint (docs/witnesses.md)."""
    try:
        files = read_bundle(path)
        report = _verify(files, pinned, policy)
    except _Failed as f:
        return BundleReport(str(path), (BundleProblem(f.file, f.detail),))
    return BundleReport(
        str(path),
        (),
        report.entries,
        report.tree_size,
        report.root,
        report.artifacts_checked,
        report.receipts_checked,
    )
