#!/usr/bin/env python3
"""Verify a LedgerML audit bundle without LedgerML: the standard library and `cryptography`.

    python tools/verify_bundle.py BUNDLE_DIR_OR_ZIP [--vkey NAME+HASH+KEY ...] [--policy FILE]
                                  [--json]

Exit 0: verified. Exit 1: a check failed (the message names the file). Exit 2: not a bundle.
Pass --vkey with the log's verifier key(s) obtained out of band to pin them; otherwise the
keys in keys.txt are used (then the bundle proves integrity, not who made it).
With --policy (a C2SP tlog-policy file, docs/witnesses.md) the checkpoint must also carry
valid cosignatures (tlog-cosignature, types 0x04 and 0x06) from the policy's witness quorum.
The layout and every check are described in docs/audit.md; `ledgerml audit verify-bundle`
runs the same checks in the same order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import sys
import zipfile
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

FORMAT = "ledgerml-audit-bundle/1"
CHUNK, MAX_LINKS = 262_144, 174


class Failed(Exception):
    def __init__(self, file: str, detail: str) -> None:
        super().__init__(f"{file}: {detail}")
        self.file, self.detail = file, detail


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- C2SP signed notes: Ed25519 (type 1) and ML-DSA-44 tlog-cosignature (type 6) ---------


def parse_vkey(line: str) -> tuple[str, bytes, int, bytes]:
    name, key_hash, blob = line.split("+", 2)
    raw = base64.b64decode(blob, validate=True)
    key_id = sha(name.encode() + b"\n" + raw)[:4]
    if len(raw) < 2 or key_id.hex() != key_hash.lower() or not name or " " in name:
        raise ValueError("key hash does not match the key")
    return name, key_id, raw[0], raw[1:]


def verify_note(note: str, vkeys: list[tuple[str, bytes, int, bytes]]) -> str:
    """The note's text if every given key signed it validly; raises ValueError otherwise."""
    if not note.endswith("\n") or "\n\n" not in note:
        raise ValueError("malformed note")
    split = note.rfind("\n\n")
    text, sigs = note[: split + 1], note[split + 2 :].split("\n")[:-1]
    good = set()
    for line in sigs:
        if not line.startswith("\u2014 "):
            raise ValueError("malformed signature line")
        name, _, b64 = line[2:].rpartition(" ")
        blob = base64.b64decode(b64, validate=True)
        for vname, key_id, typ, pub in vkeys:
            if vname != name or key_id != blob[:4]:
                continue
            sig = blob[4:]
            try:
                if typ == 0x01:
                    ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(sig, text.encode())
                elif typ == 0x06:  # subtree/v1 message over (origin, 0, size, root)
                    origin, size, root = checkpoint_head(text)
                    msg = (b"subtree/v1\n\x00" + bytes([len(name.encode())]) + name.encode()
                           + sig[:8] + bytes([len(origin.encode())]) + origin.encode()
                           + struct.pack(">QQ", 0, size) + root)  # fmt: skip
                    mldsa.MLDSA44PublicKey.from_public_bytes(pub).verify(sig[8:], msg)
                else:
                    raise ValueError(f"unsupported key type {typ}")
            except InvalidSignature:
                raise ValueError(f"bad signature from {name}") from None
            good.add((vname, key_id))
    if good != {(v[0], v[1]) for v in vkeys}:
        raise ValueError("a key did not sign the note")
    return text


def checkpoint_head(text: str) -> tuple[str, int, bytes]:
    lines = text.split("\n")
    if len(lines) < 4 or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise ValueError("not a checkpoint")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("root is not 32 bytes")
    return lines[0], int(lines[1]), root


# --- C2SP tlog-policy and tlog-cosignature (--policy) ------------------------------------


def parse_policy(text: str) -> tuple[dict[str, tuple[str, bytes, int, bytes]], dict, str]:
    """(witnesses by name, groups by name: (k, members), quorum); ValueError names the line."""
    witnesses: dict[str, tuple[str, bytes, int, bytes]] = {}
    groups: dict[str, tuple[int, list[str]]] = {}
    quorum = None
    for n, line in enumerate(text.split("\n"), 1):
        words = line.replace("\t", " ").split()
        if not words or words[0].startswith("#") or words[0] == "log":
            continue
        known = set(witnesses) | set(groups)
        if words[0] == "witness" and len(words) in (3, 4) and words[1] not in known | {"none"}:
            witnesses[words[1]] = parse_vkey(words[2])
            if witnesses[words[1]][2] not in (0x04, 0x06):
                raise ValueError(f"policy line {n}: not a cosignature key type")
        elif words[0] == "group" and len(words) >= 4 and words[1] not in known | {"none"}:
            members, k = words[3:], words[2]
            k = len(members) if k == "all" else 1 if k == "any" else int(k) if k.isdigit() else 0
            if not 1 <= k <= len(members) or len(set(members)) < len(members) or not set(
                members) <= known:  # fmt: skip
                raise ValueError(f"policy line {n}: bad group")
            groups[words[1]] = (k, members)
        elif words[0] == "quorum" and len(words) == 2 and quorum is None:
            if words[1] not in known | {"none"}:
                raise ValueError(f"policy line {n}: quorum names nothing defined before")
            quorum = words[1]
        else:
            raise ValueError(f"policy line {n}: not understood")
    if quorum is None:
        raise ValueError("policy has no quorum line")
    return witnesses, groups, quorum


def cosigners(note: str, witnesses: dict[str, tuple[str, bytes, int, bytes]]) -> set[str]:
    """Witness names with a valid cosignature on `note`; a failing one raises ValueError."""
    split = note.rfind("\n\n")
    text = note[: split + 1]
    origin, size, root = checkpoint_head(text)
    good = set()
    for line in note[split + 2 :].split("\n")[:-1]:
        name, _, b64 = line[2:].rpartition(" ")
        blob = base64.b64decode(b64, validate=True)
        for wname, (kname, key_id, typ, pub) in witnesses.items():
            if kname != name or key_id != blob[:4]:
                continue
            ts, sig = blob[4:12], blob[12:]
            if typ == 0x04:
                msg = b"cosignature/v1\ntime %d\n" % struct.unpack(">Q", ts) + text.encode()
                verify = ed25519.Ed25519PublicKey.from_public_bytes(pub).verify
            else:
                msg = (b"subtree/v1\n\x00" + bytes([len(name.encode())]) + name.encode() + ts
                       + bytes([len(origin.encode())]) + origin.encode()
                       + struct.pack(">QQ", 0, size) + root)  # fmt: skip
                verify = mldsa.MLDSA44PublicKey.from_public_bytes(pub).verify
            try:
                verify(sig, msg)
            except InvalidSignature:
                raise ValueError(f"bad cosignature from witness {wname}") from None
            good.add(wname)
    return good


def quorum_met(name: str, have: set[str], groups: dict) -> bool:
    if name == "none":
        return True
    if name not in groups:
        return name in have
    k, members = groups[name]
    return sum(quorum_met(m, have, groups) for m in members) >= k


# --- RFC 9162 §2.1.3.2 inclusion proof ------------------------------------------------------


def root_from_proof(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = sha(b"\x01" + p + r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    return r if sn == 0 else None


# --- CIDv1 as `ipfs add --cid-version 1`: raw leaves of 256 KiB, balanced dag-pb above ---


def varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


def cid_of(data: bytes) -> str:
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    level = [(b"\x01\x55\x12\x20" + sha(c), len(c), len(c)) for c in chunks]  # cid, tsize, size
    while len(level) > 1:
        parents = []
        for k in range(0, len(level), MAX_LINKS):
            group = level[k : k + MAX_LINKS]
            size = sum(s for _, _, s in group)
            ufs = b"\x08\x02\x18" + varint(size) + b"".join(b"\x20" + varint(s) for *_, s in group)
            node = b""
            for cid, tsize, _ in group:
                link = b"\x0a" + varint(len(cid)) + cid + b"\x12\x00\x18" + varint(tsize)
                node += b"\x12" + varint(len(link)) + link
            node += b"\x0a" + varint(len(ufs)) + ufs
            tsize = len(node) + sum(t for _, t, _ in group)
            parents.append((b"\x01\x70\x12\x20" + sha(node), tsize, size))
        level = parents
    return "b" + base64.b32encode(level[0][0]).decode().rstrip("=").lower()


# --- the bundle -----------------------------------------------------------------------------


def read_bundle(path: Path) -> dict[str, bytes]:
    if path.is_dir():
        files = {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*")
                 if p.is_file()}  # fmt: skip
    else:
        try:
            with zipfile.ZipFile(path) as zf:
                files = {}
                for info in zf.infolist():
                    try:
                        files[info.filename] = zf.read(info)
                    except (zipfile.BadZipFile, OSError, ValueError) as exc:
                        raise Failed(info.filename, f"unreadable in the zip: {exc}") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise SystemExit(f"error: {path} is not a bundle (zip or directory): {exc}") from None
    if "manifest.json" not in files:
        raise SystemExit(f"error: {path} is not an audit bundle: no manifest.json")
    return files


def load_json(files: dict[str, bytes], name: str) -> object:
    try:
        return json.loads(files[name])
    except (ValueError, UnicodeDecodeError) as exc:
        raise Failed(name, f"is not valid JSON: {exc}") from None


def verify(
    files: dict[str, bytes], pinned: list[str], policy: str | None = None
) -> dict[str, object]:
    try:  # 1. keys, 2. the signed manifest digest, 3. every file's SHA-256
        lines = files["keys.txt"].decode().split("\n")
        assert lines[-1] == "" and lines[:-1]
        vkeys = [parse_vkey(x) for x in (pinned or lines[:-1])]
    except (KeyError, ValueError, AssertionError, UnicodeDecodeError) as exc:
        raise Failed("keys.txt", f"is not a list of verifier keys: {exc}") from None
    ed = [v for v in vkeys if v[2] == 0x01]
    try:
        text = verify_note(files["manifest.note"].decode(), ed)
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise Failed("manifest.note", f"signature does not verify: {exc}") from None
    fmt, origin, digest, *rest = text.split("\n")
    if fmt != FORMAT or rest != [""] or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise Failed("manifest.note", f"is not a {FORMAT} note")
    if sha(files["manifest.json"]).hex() != digest:
        raise Failed("manifest.json", "SHA-256 differs from the digest signed in manifest.note")
    manifest = load_json(files, "manifest.json")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise Failed("manifest.json", "is not a bundle manifest")
    if manifest.get("format") != FORMAT or manifest.get("origin") != origin:
        raise Failed("manifest.json", "format or origin differs from manifest.note")
    listed = manifest["files"]
    for name in sorted(files):
        if name in ("manifest.json", "manifest.note"):
            continue
        if name not in listed:
            raise Failed(name, "is not listed in manifest.json")
        if sha(files[name]).hex() != listed[name].get("sha256"):
            raise Failed(name, "SHA-256 differs from manifest.json")
    for name in sorted(listed):
        if name not in files:
            raise Failed(name, "is listed in manifest.json but missing")
    try:  # 4. the checkpoint, signed by every key
        cp_text = verify_note(files["checkpoint.note"].decode(), vkeys)
        cp_origin, size, root = checkpoint_head(cp_text)
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise Failed("checkpoint.note", f"does not verify with keys.txt: {exc}") from None
    if cp_origin != origin:
        raise Failed("checkpoint.note", f"origin {cp_origin!r} is not the bundle's")
    witnessed: list[str] = []
    if policy is not None:  # the witnesses' quorum on the checkpoint every proof relies on
        try:
            witnesses, groups, quorum = parse_policy(policy)
            witnessed = sorted(cosigners(files["checkpoint.note"].decode(), witnesses))
        except ValueError as exc:
            raise Failed("checkpoint.note", f"witness policy: {exc}") from None
        if not quorum_met(quorum, set(witnessed), groups):
            raise Failed("checkpoint.note", f"lacks the witness quorum {quorum!r} (valid "
                         f"cosignatures from: {', '.join(witnessed) or 'none'})")  # fmt: skip
    entries = sorted(int(m.group(1)) for n in files
                     if (m := re.fullmatch(r"entries/(0|[1-9][0-9]*)\.json", n)))  # fmt: skip
    if entries != sorted(manifest.get("entries", [])):
        raise Failed("manifest.json", "its entry list differs from the entries/ files")
    txs = set()
    for i in entries:  # 5. each entry's leaf hash and inclusion proof against the checkpoint
        ename, pname = f"entries/{i}.json", f"proofs/{i}.json"
        leaf = sha(b"\x00" + files[ename])
        try:
            tx = json.loads(files[ename]).get("body", {}).get("tx_hash")
        except (ValueError, AttributeError, UnicodeDecodeError):
            raise Failed(ename, "is not a JSON ledger entry") from None
        if isinstance(tx, str):
            txs.add(tx)
        if pname not in files:
            raise Failed(pname, "is missing")
        proof = load_json(files, pname)
        try:
            path = [bytes.fromhex(h) for h in proof["hashes"]]  # type: ignore[index]
            claimed = bytes.fromhex(proof["leaf_hash"])  # type: ignore[index]
            index, psize = int(proof["leaf_index"]), int(proof["tree_size"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError):
            raise Failed(pname, "is not an inclusion proof") from None
        if index != i or psize != size:
            raise Failed(pname, f"proves index {index} at size {psize}, not {i} at {size}")
        if claimed != leaf:
            raise Failed(ename, "does not hash to the leaf its proof names")
        if root_from_proof(i, size, leaf, path) != root:
            raise Failed(pname, "does not lead to the checkpoint's root")
    receipts = 0
    for name in sorted(files):  # 6. receipts of transactions the entries name, successful
        m = re.fullmatch(r"chain/receipts/(0x[0-9a-f]{64})\.json", name)
        if not m:
            continue
        r = load_json(files, name)
        if not isinstance(r, dict):
            raise Failed(name, "is not a receipt")
        tx = m.group(1)
        if str(r.get("transactionHash", "")).lower() != tx or tx not in txs:
            raise Failed(name, "is not the receipt of a transaction named by a bundled entry")
        if r.get("status") != 1:
            raise Failed(name, "records a failed transaction")
        receipts += 1
    artifacts = 0
    for name in sorted(files):  # 7. artifact bytes hash to their CID
        m = re.fullmatch(r"artifacts/(b[a-z2-7]{58,})", name)
        if m and cid_of(files[name]) != m.group(1):
            raise Failed(name, "bytes do not hash to this CID")
        artifacts += bool(m)
    return {"ok": True, "entries": len(entries), "tree_size": size, "root": root.hex(),
            "receipts_checked": receipts, "artifacts_checked": artifacts,
            "problems": [], **({"cosigners": witnessed} if policy is not None else {})}  # fmt: skip


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--json"]
    pinned = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--vkey"]
    policies = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--policy"]
    opts = ("--vkey", "--policy")
    paths = [a for i, a in enumerate(args) if a not in opts and (i == 0 or args[i - 1] not in opts)]
    if len(paths) != 1 or not Path(paths[0]).exists() or len(policies) > 1:
        print("usage: verify_bundle.py BUNDLE [--vkey VKEY ...] [--policy FILE] [--json]",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        policy = Path(policies[0]).read_text(encoding="utf-8") if policies else None
    except (OSError, UnicodeDecodeError) as exc:
        print(f"--policy: cannot read {policies[0]}: {exc}", file=sys.stderr)
        return 2
    try:
        result = verify(read_bundle(Path(paths[0])), pinned, policy)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    except Failed as f:
        result = {"ok": False, "problems": [{"file": f.file, "detail": f.detail}]}
    if "--json" in argv:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif result["ok"]:
        print(f"OK {result['entries']} entries proved against checkpoint {result['tree_size']} "
              f"({result['root']}); {result['receipts_checked']} receipt(s), "
              f"{result['artifacts_checked']} artifact(s) checked")  # fmt: skip
    else:
        for p in result["problems"]:  # type: ignore[attr-defined]
            print(f"FAILED {p['file']}: {p['detail']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
