"""A LedgerML log with a 3-of-5 witness policy and five real witness processes: the
publisher, fail closed, restarts, and the rewrite and split-view drills. Cosignatures on
published checkpoints are checked with the independent verifier of c2sp.py."""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ledgerml.config import ProjectPaths
from ledgerml.errors import VerificationError
from ledgerml.ledger import init_project
from ledgerml.ledger.project import log_verifiers, open_ledger
from ledgerml.witness.policy import Policy
from ledgerml.witness.publisher import (
    COSIGNED_DB,
    CosignedStore,
    Publisher,
    PublishReport,
    publish_once,
)
from tests.witness.c2sp import verify_cosignatures
from tests.witness.conftest import WitnessProcess, cli, make_witness, run, start_all

BANKS = [f"bank-{c}" for c in "bcdef"]


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WitnessProcess]]:
    base = tmp_path_factory.mktemp("banks")
    ws = [make_witness(base, f"{b}.example/witness") for b in BANKS]
    start_all(ws)
    yield ws
    for w in ws:
        w.stop()


@pytest.fixture
def running(five: list[WitnessProcess]) -> Iterator[list[WitnessProcess]]:
    """All five up at the start and again at the end of each test."""
    start_all(five)
    yield five
    start_all(five)


def policy_text(vkey: str, ws: list[WitnessProcess], *, urls: set[int] | None = None) -> str:
    """3 of the 5 banks; URLs only for the witnesses in `urls` (default all)."""
    lines = [f"# consortium policy\nlog {vkey}"]
    for i, w in enumerate(ws):
        url = f" {w.url}" if urls is None or i in urls else ""
        lines.append(f"witness {BANKS[i]} {w.vkeys[0]}{url}")
    lines += [f"group banks 3 {' '.join(BANKS)}", "quorum banks"]
    return "\n".join(lines) + "\n"


@dataclass
class Project:
    paths: ProjectPaths
    vkey: str
    policy_file: Path

    def append(self, n: int, tag: str) -> None:
        with open_ledger(self.paths) as ledger:
            for i in range(n):
                ledger.append("x.note", {"text": f"{tag} {i}"})
            ledger.checkpoint()

    def publish(self) -> PublishReport:
        """One publisher round with the project's policy and store (`witness publish`)."""
        return publish_once(self.paths, policy_path=str(self.policy_file))

    def publisher(self, policy: Policy | None = None, store: Path | None = None) -> Publisher:
        policy = policy or Policy.parse(self.policy_file.read_text())
        store_path = store or self.paths.home / COSIGNED_DB
        ledger = open_ledger(self.paths)
        return Publisher(
            ledger, policy, CosignedStore(store_path), log_verifiers=log_verifiers(self.paths)
        )


_n = iter(range(1000))


@pytest.fixture
def project(tmp_path: Path, running: list[WitnessProcess]) -> Project:
    paths = init_project(tmp_path / "proj", origin=f"bank-a.example/log{next(_n)}")
    vkey = log_verifiers(paths)[0].vkey()
    for w in running:
        w.add_log(vkey)
    policy = tmp_path / "policy.txt"
    policy.write_text(policy_text(vkey, running))
    return Project(paths, vkey, policy)


CID = "bafkreiedp3ejhtcqsnk3nkh2hvwi6aztbqig5skneql6mjq66xywvlbxwe"


def decide(project: Project, ids: list[str]) -> None:
    """Record decisions as `ledgerml score` in another process would (no model needed)."""
    with open_ledger(project.paths) as ledger:
        for i in ids:
            body = {"decision_id": i, "model_cid": CID, "input_commitment": "ab" * 32}
            ledger.append("decision.recorded", body | {"score": 0.1, "threshold": 0.5,
                                                       "outcome": "approve"})  # fmt: skip
        ledger.checkpoint()


def check_published(report: PublishReport, ws: list[WitnessProcess], at_least: int = 3) -> None:
    """Independently: every cosignature line in the published note is valid, ≥ at_least."""
    assert report.published, report.lines()
    body, _, sigs = report.note.rpartition("\n\n")
    body += "\n"
    lines = [line + "\n" for line in sigs.split("\n") if line and "witness" in line.split()[1]]
    vkeys = [w.vkeys[0] for w in ws]
    assert len(verify_cosignatures("".join(lines), body, vkeys)) >= at_least
    assert len(lines) >= at_least


def held_size(w: WitnessProcess, origin: str) -> int:
    import hashlib

    r = httpx.get(f"{w.url}/{hashlib.sha256(origin.encode()).hexdigest()}/checkpoint", timeout=5)
    return int(r.text.split("\n")[1]) if r.status_code == 200 else -1


def test_three_of_five_kill_two_continue_kill_three_stop_restart_resume(
    project: Project, running: list[WitnessProcess]
) -> None:
    origin = log_verifiers(project.paths)[0].name
    pub = project.publisher()
    try:
        project.append(10, "first")
        report = pub.publish()
        check_published(report, running, at_least=5)
        assert report.size == 10

        running[0].stop()
        running[1].stop()
        project.append(5, "second")
        report = pub.publish()
        check_published(report, running)
        assert report.cosigners == tuple(BANKS[2:]) and report.size == 15

        running[2].stop()
        project.append(5, "third")
        report = pub.publish()
        assert not report.published and report.size == 20
        assert pub.store.newest()[0] == 15  # type: ignore[index]  # fail closed
        assert {o.witness for o in report.outcomes if not o.cosigned} == set(BANKS[:3])

        start_all(running)  # they come back holding sizes 10, 10 and 15
        assert [held_size(w, origin) for w in running] == [10, 10, 15, 20, 20]
        report = pub.publish()
        check_published(report, running, at_least=5)
        assert [held_size(w, origin) for w in running] == [20] * 5
    finally:
        pub.close()


def test_a_restarted_publisher_learns_sizes_from_409(project: Project) -> None:
    project.append(7, "a")
    assert project.publish().published
    project.append(3, "b")
    fresh = project.publisher(store=project.paths.home / "empty.db")  # knows no sizes
    try:
        report = fresh.publish()
        assert report.published and len(report.cosigners) == 5, report.lines()
        assert all(fresh.sizes[b] == 10 for b in BANKS)
    finally:
        fresh.close()


def fork(project: Project, tmp_path: Path, name: str) -> Project:
    """The operator's copy of the project (same keys and origin) at its current state."""
    home = tmp_path / name
    shutil.copytree(project.paths.home, home)
    return Project(ProjectPaths(home), project.vkey, project.policy_file)


def test_rewrite_drill(project: Project, running: list[WitnessProcess], tmp_path: Path) -> None:
    """The operator rewrites history from entry 4 and re-signs with its own key."""
    project.append(4, "shared")
    rewritten = fork(project, tmp_path, "rewritten")
    project.append(4, "genuine")
    genuine = project.publish()
    assert genuine.published and genuine.size == 8
    rewritten.append(6, "rewritten")

    r = cli("--home", str(rewritten.paths.home), "witness", "publish", "--policy",
            str(project.policy_file), "--json")  # fmt: skip
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert not report["published"] and report["cosigners"] == []
    with open_ledger(rewritten.paths, read_only=True) as ledger:
        ours_at_8 = base64.b64encode(ledger.root(8)).decode()
    for o in report["outcomes"]:
        assert o["status"] == 422 and o["their_size"] == 8
        assert o["their_root"] == genuine.root != o["our_root_at_their_size"] == ours_at_8
    r = run("--home", str(rewritten.paths.home), "witness", "publish", "--policy",
            str(project.policy_file))  # fmt: skip
    assert r.returncode == 1 and "bank-b: HTTP 422" in r.stderr and genuine.root in r.stderr

    # a verifier holding the policy: the re-signed checkpoint is refused, the genuine accepted
    forged = tmp_path / "forged.checkpoint"
    with open_ledger(rewritten.paths, read_only=True) as ledger:
        forged.write_text(ledger.newest_checkpoint())
    r = run("witness", "check", str(forged), "--policy", str(project.policy_file))
    assert r.returncode == 1 and "lacks the witness quorum" in r.stderr
    good = tmp_path / "genuine.checkpoint"
    good.write_text(genuine.note)
    r = run("witness", "check", str(good), "--policy", str(project.policy_file))
    assert r.returncode == 0, r.stderr
    r = run("witness", "check", str(good), "--policy", str(project.policy_file), "--max-age", "0")
    assert r.returncode == 2 and "--max-age" in r.stderr
    # `verify --policy`: the genuine project passes; the rewritten one, even holding the
    # genuine cosigned checkpoint, does not extend it
    r = run("--home", str(project.paths.home), "verify", "--skip-anchors", "--policy",
            str(project.policy_file))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "witness quorum met by bank-b" in r.stdout
    r = run("--home", str(rewritten.paths.home), "verify", "--skip-anchors", "--policy",
            str(project.policy_file))  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "no cosigned checkpoint" in r.stderr
    shutil.copy(project.paths.home / COSIGNED_DB, rewritten.paths.home / COSIGNED_DB)
    r = run("--home", str(rewritten.paths.home), "verify", "--skip-anchors", "--policy",
            str(project.policy_file))  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr


def test_split_view_drill(project: Project, running: list[WitnessProcess], tmp_path: Path) -> None:
    """Two trees of the same size shown to different witnesses: at most one reaches the
    quorum, the other is refused by those holding the first, and the verifier agrees."""
    project.append(4, "shared")
    assert project.publish().published
    other = fork(project, tmp_path, "view-b")
    project.append(2, "view A")
    other.append(2, "view B")
    real = Policy.parse(project.policy_file.read_text())
    only_first_three = Policy.parse(policy_text(project.vkey, running, urls={0, 1, 2}))
    only_last_two = Policy.parse(policy_text(project.vkey, running, urls={3, 4}))
    pa = project.publisher(only_first_three)
    pb = other.publisher(only_last_two)
    try:
        a, b = pa.publish(), pb.publish()
    finally:
        pa.close()
        pb.close()
    assert a.size == b.size == 6 and a.root != b.root
    assert a.published and not b.published and len(b.cosigners) == 2
    # the operator now pushes view B to everyone: the three holding A refuse it
    pb = other.publisher(real)
    try:
        b2 = pb.publish()
    finally:
        pb.close()
    assert not b2.published
    refused = {o.witness: o for o in b2.conflicts}
    assert set(refused) == set(BANKS[:3])
    assert all(o.their_root == a.root and o.their_size == 6 for o in refused.values())
    assert any(a.root in line and b.root in line for line in b2.lines())
    # a verifier with the real policy accepts A and rejects B, whatever cosignatures B has
    real.verify(a.note, log_verifiers=log_verifiers(project.paths))
    with pytest.raises(VerificationError, match="lacks the witness quorum"):
        real.verify(b2.note, log_verifiers=log_verifiers(project.paths))
    with pytest.raises(VerificationError, match="lacks the witness quorum"):
        real.verify(b.note, log_verifiers=log_verifiers(project.paths))
    # freshness: a verifier may count only recent cosignatures (a frozen view goes stale)
    real.verify(a.note, log_verifiers=log_verifiers(project.paths), max_age_s=3600)
    with pytest.raises(VerificationError, match="made in the last 3600 s"):
        real.verify(a.note, log_verifiers=log_verifiers(project.paths), max_age_s=3600,
                    now=time.time() + 7200)  # fmt: skip


def test_service_serves_only_cosigned_checkpoints(
    project: Project, running: list[WitnessProcess]
) -> None:
    """`[witness] policy` in config.toml: `serve` publishes in the background, serves the
    cosigned checkpoint, fails closed when the quorum is down, and reports it."""
    from ledgerml.serving.app import create_app
    from tests.conftest import uvicorn_thread

    config = project.paths.config_toml
    config.write_text(
        config.read_text()
        + f'\n[witness]\npolicy = "{project.policy_file}"\npublish_every_s = 0.1\n'
    )
    decide(project, ["d-1", "d-2", "d-3"])
    keys = {"auditor": "auditor-key-0123456789", "scorer": "scorer-key-0123456789"}
    auth = {"Authorization": f"Bearer {keys['auditor']}"}

    def wait_for(pred: object, what: str, timeout: float = 30) -> httpx.Response:
        deadline = time.monotonic() + timeout
        while True:
            r = httpx.get(url + "/v1/checkpoint", headers=auth, timeout=10)
            if pred(r):  # type: ignore[operator]
                return r
            assert time.monotonic() < deadline, f"{what}: {r.status_code} {r.text}"
            time.sleep(0.1)

    with uvicorn_thread(create_app(project.paths, api_keys=keys, refresh_every_s=0)) as url:
        r = wait_for(lambda r: r.status_code == 200 and "\n3\n" in r.text, "first cosigned")
        assert r.text.count("witness ") >= 3
        health = httpx.get(url + "/healthz", timeout=10).json()
        assert health["witness"]["cosigned_tree_size"] == 3
        # a decision's proof comes with the newest cosigned checkpoint
        d = httpx.get(url + "/v1/decisions/d-2", headers=auth, timeout=10).json()
        assert d["cosigned"] is True and d["checkpoint"] == r.text
        assert (
            Policy.parse(project.policy_file.read_text())
            .verify(d["checkpoint"], log_verifiers=log_verifiers(project.paths))
            .size
            == d["proof"]["tree_size"]
            == 3
        )
        # the auditor's pages: the policy and who cosigned what
        seen = httpx.get(url + "/audit/api/witnesses", headers=auth, timeout=30).json()
        assert seen["policy"]["quorum"] == "banks" and seen["fail_open"] is False
        assert seen["cosigned"][0]["size"] == 3 and seen["cosigned"][0]["cosigners"] == BANKS
        assert httpx.get(url + "/audit/api/witnesses", timeout=10).status_code == 401
        for w in running[:3]:
            w.stop()
        decide(project, ["d-4", "d-5"])
        deadline = time.monotonic() + 30
        while True:  # the publisher has tried size 5 and failed
            health = httpx.get(url + "/healthz", timeout=10).json()["witness"]
            if (health["last_round"] or {}).get("size") == 5:
                break
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert health["last_round"]["published"] is False
        r = wait_for(lambda r: r.status_code == 200, "still served")
        assert r.text.split("\n")[1] == "3"  # fail closed: the uncosigned size 5 is not served
        metrics = httpx.get(url + "/metrics", timeout=10).text
        assert 'ledgerml_witness_failures_total{witness="bank-b"}' in metrics
        assert "ledgerml_cosigned_tree_size 3" in metrics
        d = httpx.get(url + "/v1/decisions/d-5", headers=auth, timeout=10).json()
        assert d["cosigned"] is False  # not covered by a cosigned checkpoint yet
        start_all(running)
        wait_for(lambda r: r.status_code == 200 and "\n5\n" in r.text, "resumed")


def test_bundles_carry_the_cosigned_checkpoint(
    project: Project, running: list[WitnessProcess], tmp_path: Path
) -> None:
    """`audit export` puts the quorum-cosigned note in the bundle; `audit verify-bundle
    --policy` and the standalone tools/verify_bundle.py --policy demand the quorum."""
    import subprocess
    import sys

    from tests.conftest import REPO

    project.append(6, "bundled")
    running[0].stop()
    running[1].stop()
    assert project.publish().cosigners == tuple(BANKS[2:])
    home = str(project.paths.home)
    bundle = tmp_path / "bundle"
    r = run("--home", home, "audit", "export", "--all", "-o", str(bundle))
    assert r.returncode == 0, r.stderr
    assert (bundle / "checkpoint.note").read_text().count("witness ") == 3
    everyone = tmp_path / "all-five.txt"
    everyone.write_text(project.policy_file.read_text().replace("banks 3", "banks all"))
    tool = [sys.executable, str(REPO / "tools" / "verify_bundle.py"), str(bundle)]
    plain = subprocess.run([*tool, "--json"], capture_output=True, text=True, check=False)
    assert plain.returncode == 0 and "cosigners" not in json.loads(plain.stdout), plain.stdout
    for policy, ok in ((project.policy_file, True), (everyone, False)):
        r = run("audit", "verify-bundle", str(bundle), "--policy", str(policy))
        assert (r.returncode == 0) is ok, r.stdout + r.stderr
        t = subprocess.run([*tool, "--policy", str(policy), "--json"], capture_output=True,
                           text=True, check=False)  # fmt: skip
        assert (t.returncode == 0) is ok, t.stdout + t.stderr
        if ok:
            assert json.loads(t.stdout)["cosigners"] == BANKS[2:]
        else:
            assert "lacks the witness quorum" in r.stdout + r.stderr
            assert "lacks the witness quorum" in json.loads(t.stdout)["problems"][0]["detail"]


def test_local_consortium_publishes_with_a_majority_of_banks(tmp_path: Path) -> None:
    """`fl run --witnesses` uses this: a witness process per bank plus the auditor, a policy
    of ⌊n/2⌋+1 banks, processes stopped by PID afterwards."""
    from ledgerml.witness.consortium import RoundWitnessing

    paths = init_project(tmp_path / "fl", origin="consortium.example/fl-log")
    log = Project(paths, "", tmp_path / "unused")
    cosigning = RoundWitnessing(paths)
    try:
        for round_ in range(2):  # as `fl run --witnesses` does after each round
            log.append(3, f"round {round_}")
            report = cosigning.publish(["B1", "B2", "B3"])
            assert report.published and set(report.cosigners) == {"B1", "B2", "B3", "auditor"}
        consortium = cosigning.consortium
        assert consortium is not None
        assert "group banks 2 B1 B2 B3" in consortium.policy_file.read_text()
        pids = [m.proc.pid for m in consortium.members if m.proc is not None]
    finally:
        cosigning.close()
    assert [r.size for r in cosigning.reports] == [3, 6]
    assert len(pids) == 4 and all(not Path(f"/proc/{pid}").exists() for pid in pids)
    r = run("--home", str(paths.home), "verify", "--skip-anchors", "--policy",
            str(consortium.policy_file))  # fmt: skip
    assert r.returncode == 0 and "witness quorum met by B1, B2, B3, auditor" in r.stdout, r.stderr
