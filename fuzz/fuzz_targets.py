"""atheris targets for every parser an outsider can reach; run outside CI (fuzz/README.md).

    .venv/bin/python fuzz/fuzz_targets.py TARGET [libFuzzer flags…]

A target passes an input when the parser accepts it or refuses it with a `LedgerMLError`
(what the CLI turns into exit 1/2 and the service into a 4xx). Any other exception is a
crash for libFuzzer to save and minimise. The invariants that hold after acceptance
(a forgery never verifies, only ASCII tile paths) are asserted too.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["ledgerml"]):
    from ledgerml.audit.bundle import export_bundle, select_all, verify_bundle
    from ledgerml.audit.view import AuditView
    from ledgerml.cli._common import parse_json
    from ledgerml.config import ProjectPaths
    from ledgerml.crypto.errors import LedgerMLError
    from ledgerml.crypto.note import verify_note
    from ledgerml.ledger import merkle
    from ledgerml.ledger.log import Checkpoint
    from ledgerml.ledger.project import init_project, log_keys, open_ledger
    from ledgerml.serving.app import _parse_json
    from ledgerml.serving.scoring import parse_request
    from ledgerml.serving.tlog import parse_tile_path

# One project for every target process (kept in fuzz/work/, not committed), so that seeds
# written by one process (a bundle, a note) are signed by the keys the next one checks.
WORK = Path(__file__).resolve().parent / "work"
if (WORK / "p" / "config.toml").exists():
    PATHS = ProjectPaths(WORK / "p")
else:
    shutil.rmtree(WORK, ignore_errors=True)
    PATHS = init_project(WORK / "p")
LEDGER = open_ledger(PATHS)
if LEDGER.size() == 0:
    for _i in range(13):
        LEDGER.append("run.started", {"run_id": f"r{_i}", "dataset_cids": [], "model_type": "x"})
NOTE = LEDGER.checkpoint()
VERIFIERS = log_keys(PATHS).note_verifiers
TEXT = Checkpoint.from_note(NOTE)
FEATURES = ["V1", "V2", "V3", "Amount"]
SPEC_TILE = re.compile(r"(entries|0|[1-9][0-9]*)/(x[0-9]{3}/)*[0-9]{3}(\.p/[1-9][0-9]*)?")
ZIP = Path(tempfile.mkdtemp(prefix="ledgerml-fuzz-")) / "fuzz.zip"
SEED_ZIP = WORK / "seed.zip"
if not SEED_ZIP.exists():
    _view = AuditView.open(PATHS)
    export_bundle(_view, select_all(_view), SEED_ZIP)
PINNED = tuple(v.vkey() for v in VERIFIERS)


def note(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    for candidate in (text, NOTE[: len(NOTE) // 2] + text):
        try:
            parsed = verify_note(candidate, VERIFIERS)
        except LedgerMLError:
            pass
        else:  # only our own signature over our own text verifies
            assert parsed.text == NOTE[: NOTE.index("\n\n") + 1], candidate
        with contextlib.suppress(LedgerMLError):
            Checkpoint.from_note(candidate)


def entry(data: bytes) -> None:
    types = ["run.started", "drift.detected", "dataset.registered", "model.promoted"]
    event_type = types[data[0] % len(types)] if data else types[0]
    try:
        body = parse_json(data[1:].decode("utf-8", "replace"), field="--body")
        LEDGER.prepare(event_type, body)
    except LedgerMLError:
        pass


def proof(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    index, size = fdp.ConsumeIntInRange(-(2**66), 2**66), fdp.ConsumeIntInRange(-(2**66), 2**66)
    n = fdp.ConsumeIntInRange(0, 70)
    hashes = [fdp.ConsumeBytes(fdp.PickValueInList([32, 32, 32, 31, 0])) for _ in range(n)]
    leaf, root = fdp.ConsumeBytes(32), fdp.ConsumeBytes(32)
    merkle.verify_inclusion(leaf, index, size, hashes, root)
    merkle.verify_consistency(index, size, leaf, root, hashes)
    if 0 <= index < 13:  # a real leaf with forged path: must not reach the real root
        real = merkle.leaf_hash(LEDGER.entry(index))
        good = LEDGER.inclusion_proof(index, 13)
        if list(good.hashes) != hashes:
            assert not merkle.verify_inclusion(real, index, 13, hashes, TEXT.root)


def tile(data: bytes) -> None:
    path = data.decode("utf-8", "replace")
    try:
        parse_tile_path(path)
    except LedgerMLError:
        return
    assert SPEC_TILE.fullmatch(path), path


def score(data: bytes) -> None:
    with contextlib.suppress(LedgerMLError):
        parse_request(_parse_json(data), FEATURES, max_batch=64)


def bundle(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():  # structured: a zip of fuzzed members with the bundle's names
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name in ("manifest.json", "manifest.note", "checkpoint.note", "keys.txt",
                         "entries/0.json", "proofs/0.json"):  # fmt: skip
                if fdp.ConsumeBool():
                    zf.writestr(name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 400)))
        raw = buf.getvalue()
    else:
        raw = fdp.ConsumeBytes(1 << 20)
    ZIP.write_bytes(raw)
    try:
        report = verify_bundle(ZIP, PINNED)  # an auditor pins the log's key
    except LedgerMLError:
        return
    if report.ok:  # only a change of zip framing may still verify, never of content
        assert _members(ZIP) == SEED_MEMBERS, "a fuzzed bundle verified"


def _members(path: Path) -> dict[str, bytes] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except Exception:  # unreadable: not the seed's content
        return None


SEED_MEMBERS = _members(SEED_ZIP)

TARGETS: dict[str, Callable[[bytes], None]] = {
    "note": note,
    "entry": entry,
    "proof": proof,
    "tile": tile,
    "score": score,
    "bundle": bundle,
}


def seeds(name: str) -> list[bytes]:
    """Valid inputs to start from, so the fuzzer mutates past the first refusal."""
    if name == "note":
        return [NOTE.encode(), NOTE.replace("\n\n", "\n\n— x AAAAAAAA\n").encode()]
    if name == "entry":
        return [b'\x00{"run_id":"a","dataset_cids":[],"model_type":"x","params":{"k":[1,2.5]}}']
    if name == "tile":
        return [b"0/000", b"1/x001/234.p/7", b"entries/x123/456", b"63/x999/x999/999"]
    if name == "score":
        return [
            b'{"features":{"V1":0.5,"V2":-1,"V3":2e3,"Amount":12.5}}',
            b'{"records":[{"features":{"V1":1,"V2":2,"V3":3,"Amount":4}}],"alias":"champion"}',
        ]
    if name == "bundle":
        return [b"\x00" + SEED_ZIP.read_bytes()]  # first byte: ConsumeBool() -> raw zip
    return [b"\x00" * 64]


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in TARGETS:
        sys.exit(f"usage: fuzz_targets.py {{{','.join(TARGETS)}}} [--seeds DIR | libFuzzer flags]")
    if sys.argv[2:3] == ["--seeds"]:
        folder = Path(sys.argv[3])
        for i, seed in enumerate(seeds(name)):
            (folder / f"seed-{i}").write_bytes(seed)
        sys.exit(0)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], TARGETS[name])
    atheris.Fuzz()
