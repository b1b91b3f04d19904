"""Bundles exported from the demo verify with `audit verify-bundle` and with the standalone
`tools/verify_bundle.py`; one changed byte in any file makes both fail naming that file."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ledgerml.audit.bundle import verify_bundle
from tests.audit.conftest import Demo
from tests.conftest import run_cli

TOOL = Path(__file__).resolve().parents[2] / "tools" / "verify_bundle.py"


def _tool_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_bundle_tool", TOOL)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """The standalone verifier in a fresh interpreter that cannot import ledgerml."""
    code = (
        "import sys; sys.modules['ledgerml'] = None;"
        "sys.argv = ['verify_bundle.py', *sys.argv[1:]];"
        f"exec(compile(open({str(TOOL)!r}).read(), {str(TOOL)!r}, 'exec'))"
    )
    return subprocess.run(
        [sys.executable, "-I", "-c", code, *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def model_bundle(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "model"
    r = run_cli(
        demo.home, "audit", "export", "--model", "champion", "--artifacts", "-o", str(out), "--json"
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["receipts"] >= 5 and doc["artifacts_included"] >= 3, doc
    return out


def test_model_bundle_verifies_with_both(model_bundle: Path) -> None:
    r = run_cli(model_bundle, "audit", "verify-bundle", str(model_bundle), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    ours = json.loads(r.stdout)
    t = run_tool(str(model_bundle), "--json")
    assert t.returncode == 0, t.stdout + t.stderr
    theirs = json.loads(t.stdout)
    for k in ("ok", "entries", "tree_size", "root", "receipts_checked", "artifacts_checked"):
        assert ours[k] == theirs[k], k
    assert ours["artifacts_checked"] >= 3  # dag-pb data sets included: CIDs recomputed by both
    files = {p.relative_to(model_bundle).as_posix() for p in model_bundle.rglob("*") if p.is_file()}
    kinds = {f.split("/")[0] for f in files}
    assert {"entries", "proofs", "chain", "artifacts", "manifest.json", "manifest.note",
            "checkpoint.note", "keys.txt"} <= kinds  # fmt: skip


@pytest.mark.slow
def test_one_byte_in_any_file_fails_both_naming_it(model_bundle: Path, tmp_path: Path) -> None:
    tool = _tool_module()
    files = sorted(
        p.relative_to(model_bundle).as_posix() for p in model_bundle.rglob("*") if p.is_file()
    )
    checked: dict[str, int] = {}
    for rel in files:
        data = (model_bundle / rel).read_bytes()
        for pos in sorted({0, len(data) // 2, len(data) - 1}):
            work = tmp_path / "w"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(model_bundle, work)
            changed = bytearray(data)
            changed[pos] ^= 0x01
            (work / rel).write_bytes(bytes(changed))
            ours = verify_bundle(work)
            assert not ours.ok and ours.problems[0].file == rel, (rel, pos, ours.problems)
            with pytest.raises(tool.Failed) as failed:
                tool.verify(tool.read_bundle(work), [])
            assert failed.value.file == rel, (rel, pos, failed.value)
            checked[rel.split("/")[0]] = checked.get(rel.split("/")[0], 0) + 1
    assert len(checked) >= 8, checked
    # and through both command lines, exit 1 naming the file
    work = tmp_path / "cli"
    shutil.copytree(model_bundle, work)
    entry = next(work.glob("entries/*.json"))
    entry.write_bytes(entry.read_bytes().replace(b'"v":1', b'"v":2'))
    rel = entry.relative_to(work).as_posix()
    r = run_cli(work, "audit", "verify-bundle", str(work))
    assert r.returncode == 1 and rel in r.stdout, r.stdout
    t = run_tool(str(work))
    assert t.returncode == 1 and rel in t.stdout, t.stdout


@pytest.mark.slow
def test_decision_range_zip_and_all(demo: Demo, tmp_path: Path) -> None:
    zipped = tmp_path / "range.zip"
    r = run_cli(demo.home, "audit", "export", "--decisions", "13..40", "-o", str(zipped), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["entries"] >= 27 + 10
    assert run_cli(demo.home, "audit", "verify-bundle", str(zipped)).returncode == 0
    assert run_tool(str(zipped)).returncode == 0
    # one byte of one member changed inside the zip: both name the member
    import zipfile

    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(zipped) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "checkpoint.note":
                data = data.replace(b"\n\n", b"\n \n", 1)
            dst.writestr(info, data)
    r = run_cli(demo.home, "audit", "verify-bundle", str(tampered))
    assert r.returncode == 1 and "checkpoint.note" in r.stdout
    t = run_tool(str(tampered))
    assert t.returncode == 1 and "checkpoint.note" in t.stdout
    # by time: everything in the demo happened today
    r = run_cli(demo.home, "audit", "export", "--decisions", "2000-01-01..2999-01-01",
                "-o", str(tmp_path / "bytime"))  # fmt: skip
    assert r.returncode == 0, r.stderr


def test_pinned_key_that_did_not_sign_fails(model_bundle: Path) -> None:
    other = "someone.else/log+4148cf1e+AXtB+f/i/bMegiH4PI0t3V4tt1oJbcG9p4NbSl8bbtiM"
    t = run_tool(str(model_bundle), "--vkey", other)
    assert t.returncode != 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("--decisions", "40..13"), "--decisions"),
        (("--decisions", "13-40"), "--decisions"),
        (("--decisions", "yesterday..today"), "--decisions"),
        (("--decisions", "900000..900010"), "--decisions"),
        (("--model", "nope"), "--model"),
        (("--model", "champion", "--all"), "selection"),
        ((), "selection"),
    ],
)
def test_export_bad_input_exits_2(
    demo: Demo, tmp_path: Path, args: tuple[str, ...], field: str
) -> None:
    r = run_cli(demo.home, "audit", "export", *args, "-o", str(tmp_path / "b"))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert field in r.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_unreadable_bundles_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (junk, empty, tmp_path / "missing"):
        r = run_cli(tmp_path, "audit", "verify-bundle", str(path))
        assert r.returncode == 2 and "PATH" in r.stderr, r.stderr
        t = run_tool(str(path))
        assert t.returncode == 2, t.stdout + t.stderr


def test_post_quantum_log_bundle_verifies_with_both(tmp_path: Path) -> None:
    """With `init --pq` the checkpoint also carries an ML-DSA-44 cosignature; both verifiers
    check it, and a stripped or altered cosignature fails naming checkpoint.note."""
    from ledgerml.ledger import init_project, open_ledger

    paths = init_project(tmp_path / "pq", post_quantum=True)
    with open_ledger(paths) as ledger:
        ledger.append("run.started", {"run_id": "r1", "dataset_cids": [], "model_type": "x"})
        ledger.append("x.note", {"text": "hello"})
    out = tmp_path / "b"
    r = run_cli(paths.home, "audit", "export", "--all", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert len((out / "keys.txt").read_text().splitlines()) == 2
    assert run_cli(paths.home, "audit", "verify-bundle", str(out)).returncode == 0
    assert run_tool(str(out)).returncode == 0
    note = (out / "checkpoint.note").read_text()
    lines = note.split("\n")
    pq_line = max(range(len(lines)), key=lambda i: len(lines[i]))  # the ML-DSA line is longest
    sig = lines[pq_line]
    lines[pq_line] = sig[:-8] + ("A" if sig[-8] != "A" else "B") + sig[-7:]
    (out / "checkpoint.note").write_text("\n".join(lines))
    tool = _tool_module()
    with pytest.raises(tool.Failed) as failed:
        tool.verify(tool.read_bundle(out), [])
    assert failed.value.file == "checkpoint.note"
    ours = verify_bundle(out)
    assert not ours.ok and ours.problems[0].file == "checkpoint.note"
    # even with the manifest re-made and re-signed by the log's Ed25519 key (the operator),
    # the altered ML-DSA-44 cosignature itself fails in both verifiers
    import hashlib

    from ledgerml.crypto.note import SIG_ED25519, sign_note
    from ledgerml.ledger import log_keys

    manifest = json.loads((out / "manifest.json").read_text())
    data = (out / "checkpoint.note").read_bytes()
    manifest["files"]["checkpoint.note"] = {"sha256": hashlib.sha256(data).hexdigest(),
                                            "size": len(data)}  # fmt: skip
    raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (out / "manifest.json").write_bytes(raw)
    signers = [s for s in log_keys(paths).note_signers if s.sig_type == SIG_ED25519]
    text = f"ledgerml-audit-bundle/1\n{manifest['origin']}\n{hashlib.sha256(raw).hexdigest()}\n"
    (out / "manifest.note").write_text(sign_note(text, signers))
    with pytest.raises(tool.Failed) as failed:
        tool.verify(tool.read_bundle(out), [])
    assert failed.value.file == "checkpoint.note" and "signature" in failed.value.detail
    ours = verify_bundle(out)
    assert not ours.ok and ours.problems[0].file == "checkpoint.note"
    assert "signature" in ours.problems[0].detail
