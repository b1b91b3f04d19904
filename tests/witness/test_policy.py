"""tlog-policy parsing and the quorum rule: every malformed line is refused naming the line,
and the quorum arithmetic of the spec's example holds."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from ledgerml.errors import InputError
from ledgerml.witness.policy import Policy


def vkey(name: str, sig_type: int = 0x04) -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    kid = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4]
    return f"{name}+{kid.hex()}+{base64.b64encode(bytes([sig_type]) + public).decode()}"


def example() -> str:
    """The example policy of c2sp.org/tlog-policy, with real keys."""
    xs = "\n".join(f"witness X{i} {vkey(f'x{i}.example')}" for i in (1, 2, 3))
    ys = "\n".join(f"witness Y{i} {vkey(f'y{i}.example')}" for i in (1, 2, 3))
    return (
        f"log {vkey('log.example', 0x01)}\n\n{xs}\ngroup X-witnesses 2 X1 X2 X3\n\n"
        f"  # Y, tab separated\n{ys}\ngroup\tY-witnesses any Y1 Y2 Y3\n\n"
        "group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n"
    )


def test_the_spec_example() -> None:
    p = Policy.parse(example())
    assert len(p.logs) == 1 and len(p.witnesses) == 6 and p.quorum == "X-and-Y"
    assert p.satisfied({"X1", "X3", "Y2"})
    assert not p.satisfied({"X1", "Y1", "Y2", "Y3"})  # only one X
    assert not p.satisfied({"X1", "X2", "X3"})  # no Y
    assert Policy.parse(example().replace("quorum X-and-Y", "quorum none")).satisfied(set())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("quorum X-and-Y\n", ""), "no quorum line"),
        (lambda t: t + "quorum X1\n", "second quorum"),
        (lambda t: t.replace("group X-witnesses 2", "group X-witnesses 4"), "threshold 4"),
        (lambda t: t.replace("group X-witnesses 2", "group X-witnesses 0"), "threshold"),
        (lambda t: t.replace("group X-witnesses 2", "group X-witnesses two"), "threshold"),
        (lambda t: t.replace("X1 X2 X3", "X1 X1 X3"), "listed twice"),
        (lambda t: t.replace("X1 X2 X3", "X1 X2 Z9"), "not defined"),
        (lambda t: t.replace("quorum X-and-Y", "quorum nobody"), "not defined"),
        (lambda t: t.replace("witness Y1", "witness X1"), "already defined"),
        (lambda t: t.replace("witness Y1", "witness none"), "reserved"),
        (lambda t: t + "monitor foo\n", "unknown keyword"),
        (lambda t: t + "log nonsense\n", "malformed verifier key"),
        (lambda t: t + f"witness Z {vkey('z.example', 0x01)}\n", "key type 0x01"),
        (lambda t: t + f"witness Z {vkey('z.example', 0x07)}\n", "key type 0x07"),
        (lambda t: t + "witness Z\n", "expected `witness"),
        (lambda t: t + "quorum\x01\n", "control character"),
    ],
)
def test_malformed_policies_name_the_line(change: object, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        Policy.parse(change(example()))  # type: ignore[operator]
    assert info.value.field == "policy"


def test_duplicate_keys_are_refused() -> None:
    key = vkey("w.example")
    with pytest.raises(InputError, match="duplicate key"):
        Policy.parse(f"witness A {key}\nwitness B {key}\nquorum A\n")


def test_fail_closed_serves_only_cosigned_and_fail_open_the_newest(tmp_path: Path) -> None:
    from ledgerml.ledger import init_project
    from ledgerml.ledger.project import open_ledger
    from ledgerml.witness.publisher import CosignedStore, served_checkpoint

    paths = init_project(tmp_path / "p", origin="fail.example/log")
    store = CosignedStore(tmp_path / "cosigned.db")
    with open_ledger(paths) as ledger:
        newest = ledger.checkpoint
        assert served_checkpoint(store, newest, fail_open=False) is None
        assert served_checkpoint(store, newest, fail_open=True) == newest()
        ledger.append("x.note", {"n": 1})
        old = ledger.checkpoint()
        store.save(1, ledger.root(1), old + "— cosigner AAAA\n", ["w"])
        ledger.append("x.note", {"n": 2})
        assert served_checkpoint(store, newest, fail_open=False) == old + "— cosigner AAAA\n"
        assert "\n2\n" in served_checkpoint(store, newest, fail_open=True)  # type: ignore[operator]
    store.close()


def test_one_publisher_leads_when_several_workers_run(tmp_path: Path) -> None:
    """`serve --workers N` starts a publisher per worker: one holds the lock and publishes,
    the others wait, and one takes over when the leader stops."""
    import time

    from ledgerml.ledger import init_project
    from ledgerml.ledger.project import log_verifiers, open_ledger
    from ledgerml.witness.publisher import ServicePublisher, start_publisher

    paths = init_project(tmp_path / "p", origin="workers.example/log")
    (paths.home / "policy.txt").write_text(f"log {log_verifiers(paths)[0].vkey()}\nquorum none\n")
    config = paths.config_toml
    config.write_text(config.read_text() + '\n[witness]\npolicy = "policy.txt"\n'
                      "publish_every_s = 0.05\n")  # fmt: skip

    def wait_for_size(pub: ServicePublisher, size: int) -> None:
        deadline = time.monotonic() + 20
        while (pub.store.newest() or (-1, ""))[0] < size:
            assert time.monotonic() < deadline, pub.loop.status()
            time.sleep(0.05)

    with open_ledger(paths) as one, open_ledger(paths) as two:
        first, second = start_publisher(paths, one), start_publisher(paths, two)
        assert first is not None and second is not None
        running = [first, second]
        try:
            one.append("x.note", {"n": 1})
            wait_for_size(first, one.size())
            leaders = [p for p in running if p.loop.leader]
            assert len(leaders) == 1 and leaders[0].loop.rounds >= 1
            follower = second if leaders[0] is first else first
            assert follower.loop.rounds == 0
            leaders[0].stop()
            running.remove(leaders[0])
            one.append("x.note", {"n": 2})
            wait_for_size(follower, one.size())
            assert follower.loop.leader and follower.loop.rounds >= 1
        finally:
            for p in running:
                p.stop()
