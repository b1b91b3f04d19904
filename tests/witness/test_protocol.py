"""The witness (`ledgerml witness serve`, a real process) driven over HTTP by the independent
client in c2sp.py: every status code of c2sp.org/tlog-witness for its case, cosignatures an
independent verifier accepts, bad input refused with no state change."""

from __future__ import annotations

import base64
import hashlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from ledgerml.cli.main import main as cli_main
from tests.witness.c2sp import (
    DASH,
    TestLog,
    add_checkpoint_body,
    key_id,
    leaf,
    mth,
    parse_vkey,
    post,
    verify_cosignatures,
)
from tests.witness.conftest import WitnessProcess, cli, make_witness, start_all

NAME = "auditor.example/witness"
NL8, NL8X = "\n8\n", "\n8x\n"


@pytest.fixture(scope="module")
def witness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessProcess]:
    w = make_witness(tmp_path_factory.mktemp("w"), NAME, pq=True)
    start_all([w])
    yield w
    w.stop()


_counter = iter(range(10**6))


@pytest.fixture
def log(witness: WitnessProcess) -> TestLog:
    """A fresh log of 5 entries that the witness trusts, not yet cosigned."""
    log = TestLog(f"test.example/log{next(_counter)}")
    log.append(*(f"entry {i}".encode() for i in range(5)))
    witness.add_log(log.vkey)
    return log


def held(witness: WitnessProcess, log: TestLog) -> tuple[int, str] | None:
    """What the witness says it last cosigned (its monitoring endpoint)."""
    digest = hashlib.sha256(log.origin.encode()).hexdigest()
    r = httpx.get(f"{witness.url}/{digest}/checkpoint", timeout=10)
    if r.status_code == 404:
        return None
    assert r.status_code == 200
    origin, size, root = r.text.split("\n")[:3]
    assert origin == log.origin
    return int(size), root


def cosign(witness: WitnessProcess, log: TestLog, old: int) -> httpx.Response:
    r = post(witness.url, add_checkpoint_body(old, log.proof(old), log.checkpoint()))
    assert r.status_code == 200, r.text
    return r


def test_cosignatures_verify_independently(witness: WitnessProcess, log: TestLog) -> None:
    before = int(time.time())
    r = post(witness.url, add_checkpoint_body(0, [], log.checkpoint()))
    assert r.status_code == 200, r.text
    cosigs = verify_cosignatures(r.text, log.body(), witness.vkeys)
    assert sorted(c.sig_type for c in cosigs) == [0x04, 0x06]
    assert all(c.name == NAME and before - 1 <= c.timestamp <= time.time() + 1 for c in cosigs)
    # the key ID rule, from the vkey the CLI printed
    name, kid, sig_type, public = parse_vkey(witness.vkeys[0])
    assert sig_type == 0x04 and len(public) == 32
    assert kid == hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    # a cosignature over another body does not verify: the verifier can fail
    with pytest.raises(AssertionError, match="bad Ed25519"):
        verify_cosignatures(r.text.split("\n")[0] + "\n", log.body(4), witness.vkeys)
    # the monitoring endpoint serves it, with the log's signature and the cosignatures
    assert held(witness, log) == (5, base64.b64encode(mth(log.leaves)).decode())


def test_extension_with_a_consistency_proof(witness: WitnessProcess, log: TestLog) -> None:
    cosign(witness, log, 0)
    for extra in (1, 3, 17):
        old = len(log.leaves)
        log.append(*(f"more {old + i}".encode() for i in range(extra)))
        r = cosign(witness, log, old)
        verify_cosignatures(r.text, log.body(), witness.vkeys)
    assert held(witness, log) == (26, base64.b64encode(mth(log.leaves)).decode())
    # the same checkpoint again (old = size, no proof) is cosigned again
    cosign(witness, log, 26)


def test_404_unknown_origin(witness: WitnessProcess) -> None:
    stranger = TestLog("nobody.example/log")
    stranger.append(b"x")
    r = post(witness.url, add_checkpoint_body(0, [], stranger.checkpoint()))
    assert r.status_code == 404


def test_403_signatures(witness: WitnessProcess, log: TestLog) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    # a signature from a key the witness does not know (same name, other key ID): ignored,
    # so no trusted signature is left
    r = post(witness.url, add_checkpoint_body(0, [], log.sign(log.body(), other)))
    assert r.status_code == 403
    # the trusted key's name and ID, but a signature over other text: malformed note
    forged = log.checkpoint().replace(log.body(), log.body(5, b"\x07" * 32))
    r = post(witness.url, add_checkpoint_body(0, [], forged))
    assert r.status_code == 403
    # an unknown key type beside nothing trusted: still 403; beside the real one: ignored
    blob = base64.b64encode(b"\x00\x01\x02\x03" + b"\xff" * 80).decode()
    odd = f"{DASH} {log.origin}-other {blob}\n"
    r = post(witness.url, add_checkpoint_body(0, [], log.sign(log.body(), other) + odd))
    assert r.status_code == 403
    assert held(witness, log) is None
    r = post(witness.url, add_checkpoint_body(0, [], log.checkpoint() + odd))
    assert r.status_code == 200


def test_400_old_larger_than_the_checkpoint(witness: WitnessProcess, log: TestLog) -> None:
    r = post(witness.url, add_checkpoint_body(6, [], log.checkpoint()))
    assert r.status_code == 400
    assert held(witness, log) is None


def test_409_names_the_size_it_holds(witness: WitnessProcess, log: TestLog) -> None:
    cosign(witness, log, 0)
    log.append(b"six", b"seven")
    for old in (0, 3, 6):
        r = post(witness.url, add_checkpoint_body(old, log.proof(old), log.checkpoint()))
        assert r.status_code == 409
        assert r.headers["content-type"].split(";")[0] == "text/x.tlog.size"
        assert r.text == "5\n"
    cosign(witness, log, 5)


def test_422_inconsistent_views(witness: WitnessProcess, log: TestLog) -> None:
    cosign(witness, log, 0)
    good = held(witness, log)
    fork = TestLog(log.origin, key=log.key)  # the operator's key, another history
    fork.append(*(f"rewritten {i}".encode() for i in range(7)))
    # a rewritten log: its proof from 5 cannot match the root the witness holds
    r = post(witness.url, add_checkpoint_body(5, fork.proof(5), fork.checkpoint()))
    assert r.status_code == 422
    # the same size with another root
    r = post(witness.url, add_checkpoint_body(5, [], fork.checkpoint(5)))
    assert r.status_code == 422
    # a proof that is simply wrong
    log.append(b"x", b"y")
    bad = [bytes(32)] * len(log.proof(5))
    r = post(witness.url, add_checkpoint_body(5, bad, log.checkpoint()))
    assert r.status_code == 422
    # a proof from size 0 must be empty
    empty_log = TestLog(f"{log.origin}-fresh", key=log.key)
    empty_log.append(b"a", b"b")
    witness.add_log(empty_log.vkey)
    r = post(witness.url, add_checkpoint_body(0, [bytes(32)], empty_log.checkpoint()))
    assert r.status_code == 422
    # a size-0 checkpoint must carry the empty root
    r = post(witness.url, add_checkpoint_body(0, [], empty_log.sign(empty_log.body(0, b"\1" * 32))))
    assert r.status_code == 422
    assert held(witness, log) == good and held(witness, empty_log) is None
    # the genuine extension still goes through: nothing above changed the state
    cosign(witness, log, 5)


def test_bad_input_is_refused_without_state_change(witness: WitnessProcess, log: TestLog) -> None:
    cosign(witness, log, 0)
    log.append(*(b"z%d" % i for i in range(3)))
    cp, proof = log.checkpoint(), log.proof(5)
    proof_text = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    node = "A" * 43 + "=\n"  # a base64 32-byte hash line
    cases = {
        "no old line": f"{proof_text}\n{cp}".encode(),
        "old with leading zero": f"old 05\n{proof_text}\n{cp}".encode(),
        "old not a number": f"old five\n{proof_text}\n{cp}".encode(),
        "no blank line": f"old 5\n{proof_text}".encode(),
        "proof not base64": f"old 5\n!!!!\n\n{cp}".encode(),
        "proof not 32 bytes": f"old 5\nAAAA\n\n{cp}".encode(),
        "64 proof lines": "old 5\n" + node * 64 + "\n" + cp,
        "not UTF-8": b"old 5\n\n\xff\xfe" + cp.encode(),
        "checkpoint without signatures": f"old 5\n{proof_text}\n{log.body()}".encode(),
        "checkpoint size not decimal": f"old 5\n\n{cp.replace(NL8, NL8X)}".encode(),
        "control character": f"old 5\n{proof_text}\n{cp}".replace("\n\n", "\n\x01\n", 1).encode(),
    }
    for label, body in cases.items():
        if isinstance(body, str):
            body = body.encode()
        r = post(witness.url, body)
        assert r.status_code == 400, (label, r.status_code, r.text)
    huge = b"old 5\n" + b"A" * (300 * 1024)
    r = post(witness.url, huge)
    assert r.status_code == 413
    r = httpx.get(witness.url + "/add-checkpoint", timeout=10)
    assert r.status_code == 405
    assert held(witness, log)[0] == 5  # type: ignore[index]
    cosign(witness, log, 5)


def test_add_log_refuses_unknown_key_types(
    witness: WitnessProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    for sig_type in (0x02, 0x05, 0x09):
        kid = key_id("odd.example/log", sig_type, public)
        blob = base64.b64encode(bytes([sig_type]) + public).decode()
        vkey = f"odd.example/log+{kid.hex()}+{blob}"
        code = cli_main(["witness", "add-log", vkey, "--dir", str(witness.dir)])
        assert code == 2 and "key type" in capsys.readouterr().err
    r = cli("witness", "add-log", "odd.example/log+00000000+AQ==", "--dir", str(witness.dir))
    assert r.returncode == 2 and "vkey" in r.stderr
    assert "odd.example/log" not in cli("witness", "show", "--dir", str(witness.dir)).stdout


def test_concurrent_requests_cannot_roll_back_or_fork(
    witness: WitnessProcess, log: TestLog
) -> None:
    """Many requests from the same old size at once, for different trees: at most one
    cosigned per size, and the head never moves back (the race in the tlog-witness text)."""
    cosign(witness, log, 0)
    forks = []
    for i in range(6):
        fork = TestLog(log.origin, key=log.key, leaves=list(log.leaves))
        fork.append(*(f"fork {i} entry {j}".encode() for j in range(1 + i % 2)))
        forks.append(fork)
    results: list[tuple[int, int]] = []

    def send(f: TestLog) -> None:
        r = post(witness.url, add_checkpoint_body(5, f.proof(5), f.checkpoint()))
        results.append((r.status_code, len(f.leaves)))

    threads = [threading.Thread(target=send, args=(f,)) for f in forks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results).count(200) == 1, results
    winner = next(n for s, n in results if s == 200)
    assert all(s == 409 for s, _ in results if s != 200), results
    assert held(witness, log)[0] == winner  # type: ignore[index]


def test_state_survives_a_crash_right_after_cosigning(
    witness: WitnessProcess, log: TestLog, tmp_path: Path
) -> None:
    """Saved before answering: kill -9 after a 200, restart, and the other root of the same
    size is refused."""
    cosign(witness, log, 0)
    fork = TestLog(log.origin, key=log.key, leaves=list(log.leaves))
    log.append(b"the real six")
    fork.append(b"another six")
    cosign(witness, log, 5)
    witness.stop(signal.SIGKILL)
    start_all([witness])
    r = post(witness.url, add_checkpoint_body(6, [], fork.checkpoint()))
    assert r.status_code == 422
    r = post(witness.url, add_checkpoint_body(5, fork.proof(5), fork.checkpoint()))
    assert r.status_code == 409 and r.text == "6\n"
    assert leaf(b"the real six") in log.leaves


def test_a_log_whose_key_name_is_not_its_origin(witness: WitnessProcess) -> None:
    """`add-log VKEY --origin O`: the key is trusted for origin O only."""
    log = TestLog(f"test.example/renamed{next(_counter)}")
    log.append(b"one", b"two")
    name = "signer.example/key"
    kid = key_id(name, 0x01, log.public)
    blob = base64.b64encode(bytes([1]) + log.public).decode()
    vkey = f"{name}+{kid.hex()}+{blob}"
    sig = base64.b64encode(kid + log.key.sign(log.body().encode())).decode()
    note = f"{log.body()}\n{DASH} {name} {sig}\n"
    assert post(witness.url, add_checkpoint_body(0, [], note)).status_code == 404
    assert (
        cli_main(["witness", "add-log", vkey, "--origin", log.origin, "--dir", str(witness.dir)])
        == 0
    )
    r = post(witness.url, add_checkpoint_body(0, [], note))
    assert r.status_code == 200, r.text
    verify_cosignatures(r.text, log.body(), witness.vkeys)


# Interoperability: a real Sigsum log's checkpoints and consistency proofs, with the
# statuses another witness implementation expects for them — the request sequence of
# FiloSottile/litetlog cmd/litewitness/testdata/litewitness.txt (ISC licence, © The
# Torchwood Authors). One difference is the spec's: an unknown origin is now 404 (that
# file, written earlier, expects 403).
SIGSUM_KEY = "ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f"
SIGSUM = "sigsum.org/v1/tree/4d6d8825a6bb689d459628312889dfbb0bcd41b5211d9e1ce768b0ff0309e562"
K0 = "KgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
K1, K2 = (
    "KgEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
)
R3, R5 = (
    "RcCI1Nk56ZcSmIEfIn0SleqtV7uvrlXNccFx595Iwl0=",
    "QrtXrQZCCvpIgsSmOsah7HdICzMLLyDfxToMql9WTjY=",
)
K2_WRONG = "KgIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABA="
K3, K4 = (
    "KgMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "KgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
)
P15, P35 = (
    "+fUDV+k970B4I3uKrqJM4aP1lloPZP8mvr2Z4wRw2LI=",
    "wgiIFdZfYNv6WU1OllBKsWnLYIS/DBMqt8Uh/S4OukE=",
)
S1 = "UgIom7fPZTqpxWWhyjWduBvTvGVqsokMbqTArsQilegKoFBJQjUFAmQ0+YeSPM3wfUQMFSzVnnNuWRTYrajXpNUbIQY="
S3 = "UgIom2VbtIcdFbwFAy1n7s6IkAxIY6J/GQOTuZF2ORV39d75cbAj2aQYwyJre36kezNobZs4SUUdrcawfAB8WVrx6go="
S5 = "UgIomw/EOJmWi0i1FQsOj+etB7F8IccFam/jgd6wzRns4QPVmyEZtdvl1U2KEmLOZ/ASRcWJi0tW90dJWAShei7sDww="


def sigsum_request(
    old: int, proof: list[str], size: int, root: str, sig: str, origin: str = SIGSUM
) -> bytes:
    lines = [f"old {old}", *proof, "", origin, str(size), root, "", f"{DASH} {origin} {sig}"]
    return ("\n".join(lines) + "\n").encode()


def test_interop_with_a_real_sigsum_log(witness: WitnessProcess) -> None:
    public = bytes.fromhex(SIGSUM_KEY)
    assert SIGSUM.endswith(hashlib.sha256(public).hexdigest())
    kid = key_id(SIGSUM, 0x01, public)
    witness.add_log(f"{SIGSUM}+{kid.hex()}+{base64.b64encode(bytes([1]) + public).decode()}")
    steps = [
        (sigsum_request(0, [], 1, K0, S1), 200, None),
        (sigsum_request(1, [K1, K2], 3, R3, S3[:-2] + "x="), 403, None),  # signature altered
        (sigsum_request(1, [K1, K2], 3, R3, S3, SIGSUM[:-1] + "3"), 404, None),  # unknown log
        (sigsum_request(1, [], 3, R3, S3), 422, None),  # no proof
        (sigsum_request(1, [K1, K2_WRONG], 3, R3, S3), 422, None),  # wrong proof
        (sigsum_request(1, [K1, K2], 3, R3, S3), 200, None),
        (sigsum_request(1, [K1, P15, K4], 5, R5, S5), 409, "3\n"),
        (sigsum_request(3, [K2, K3, P35, K4], 5, R5, S5), 200, None),
        (sigsum_request(0, [], 5, R5, S5), 409, "5\n"),
    ]  # fmt: skip
    for i, (body, status, text) in enumerate(steps):
        r = post(witness.url, body)
        assert r.status_code == status, (i, r.status_code, r.text)
        if text is not None:
            assert r.text == text
        if status == 200:
            checkpoint = body.decode().split("\n\n", 1)[1]
            verify_cosignatures(r.text, checkpoint.rsplit("\n\n", 1)[0] + "\n", witness.vkeys)
