"""Mutated add-checkpoint bodies: the witness answers 4xx (never an exception), and its
state moves only when it cosigns, and then only to the checkpoint the log really signed.
The witness runs in this process here (same class the server wraps) so hypothesis can try
hundreds of bodies quickly; the HTTP layer is covered by test_protocol.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerml.witness.core import Witness, init_witness
from tests.witness.c2sp import TestLog, add_checkpoint_body


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Witness, TestLog, bytes]]:
    home = tmp_path_factory.mktemp("fuzz") / "w"
    init_witness(home, name="fuzz.example/witness")
    w = Witness.open(home)
    log = TestLog("fuzz.example/log")
    log.append(*(b"e%d" % i for i in range(5)))
    w.add_log(log.vkey)
    assert w.add_checkpoint(add_checkpoint_body(0, [], log.checkpoint())).status == 200
    log.append(*(b"f%d" % i for i in range(6)))
    body = add_checkpoint_body(5, log.proof(5), log.checkpoint())
    yield w, log, body
    w.close()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_bodies_are_refused_without_state_change(
    setup: tuple[Witness, TestLog, bytes], data: st.DataObject
) -> None:
    w, log, body = setup
    before = w.head(log.origin)
    assert before is not None and before.size == 5
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup-line"]))
    b = bytearray(body)
    pos = data.draw(st.integers(0, len(b) - 1))
    if kind == "flip":
        b[pos] ^= data.draw(st.integers(1, 255))
    elif kind == "insert":
        b[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        del b[pos : pos + data.draw(st.integers(1, 8))]
    elif kind == "truncate":
        del b[pos:]
    else:
        lines = bytes(b).split(b"\n")
        i = data.draw(st.integers(0, len(lines) - 1))
        b = bytearray(b"\n".join([*lines[: i + 1], lines[i], *lines[i + 1 :]]))
    answer = w.add_checkpoint(bytes(b))
    assert answer.status in (200, 400, 403, 404, 409, 413, 422), answer
    after = w.head(log.origin)
    if answer.status != 200:
        assert after == before
    else:  # only a body that still carries the log's genuine checkpoint can be cosigned
        assert after is not None and after.size == len(log.leaves)
        assert log.body() in after.note
        # put the witness back at size 5 for the next example: a fresh witness state
        w._conn.execute(
            "UPDATE heads SET size=?, root=?, note=? WHERE origin=?",
            (before.size, before.root, before.note, log.origin),
        )
