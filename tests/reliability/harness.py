"""Scenario code shared by `tests/reliability/` and `bench/bench_reliability.py`.

The tests assert on what these functions observe; the bench prints the same
observations as `fault -> expected -> observed` rows. Everything runs the real CLI
in a subprocess (`python -m ledgerml.cli.main`), so a kill point's SIGKILL takes
down exactly what a user's process would be.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- processes


def cli_env(crash_at: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no inherited project, an optional kill point."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200", **extra)
    env.pop("LEDGERML_HOME", None)
    env.pop("LEDGERML_CRASH_AT", None)
    if crash_at:
        env["LEDGERML_CRASH_AT"] = crash_at
    return env


def cli_argv(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), *args]


def run_cli(
    home: Path,
    *args: str,
    crash_at: str | None = None,
    input_: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """`ledgerml --home HOME ARGS…` in a fresh process, optionally armed with a kill point."""
    return subprocess.run(
        cli_argv(home, *args),
        input=input_,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(crash_at),
        check=False,
    )


def killed(result: subprocess.CompletedProcess[str]) -> bool:
    """True when the process died of SIGKILL (its own kill point)."""
    return result.returncode == -9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until `GET /healthz` answers 200; fail if the server process exits first."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("serve did not become healthy")
        time.sleep(0.2)


# ----------------------------------------------------------------------------- projects


def ensure_api_key(home: Path, role: str) -> str:
    """The project's API key for `role`, adding one to config.toml if there is none."""
    config = home / "config.toml"
    text = config.read_text()
    keys = tomllib.loads(text).get("serving", {}).get("api_keys", {})
    if role in keys:
        value = keys[role]
        return str(value if isinstance(value, str) else value[0])
    key = f"{role}-reliability-" + os.urandom(12).hex()
    if "api_keys" in tomllib.loads(text).get("serving", {}):
        text = text.replace("[serving.api_keys]\n", f'[serving.api_keys]\n{role} = "{key}"\n', 1)
    else:
        text += f'\n[serving.api_keys]\n{role} = "{key}"\n'
    config.write_text(text)
    return key


def count_type(home: Path, event_type: str) -> int:
    """Entries of `event_type` in the project's log (read-only)."""
    from ledgerml.ledger.log import count_of_type

    conn = sqlite3.connect(f"file:{home / 'ledger.db'}?mode=ro", uri=True)
    try:
        return count_of_type(conn, event_type)
    finally:
        conn.close()


# ----------------------------------------------------------------------------- kill points


def run_ids(home: Path) -> list[str]:
    """`body.run_id` of every `run.started` entry, in log order (read-only)."""
    import orjson

    from ledgerml.ledger.log import type_suffix

    conn = sqlite3.connect(f"file:{home / 'ledger.db'}?mode=ro", uri=True)
    try:
        suffix = type_suffix("run.started")
        rows = conn.execute(
            "SELECT entry FROM entries WHERE substr(entry, -?) = ? ORDER BY idx",
            (len(suffix), suffix),
        )
        return [orjson.loads(r[0])["body"]["run_id"] for r in rows]
    finally:
        conn.close()


def append_run(
    home: Path, run_id: str, crash_at: str | None = None
) -> subprocess.CompletedProcess[str]:
    body = f'{{"run_id":"{run_id}","dataset_cids":[],"model_type":"xgboost"}}'
    return run_cli(
        home, "log", "append", "--type", "run.started", "--body", body, crash_at=crash_at
    )


def verify_exit(home: Path, notes: list[str] | None = None) -> int:
    """`ledgerml verify` exit code; on failure its last words go to `notes`."""
    done = run_cli(home, "verify", "--json")
    if done.returncode != 0 and notes is not None:
        notes.append(f"verify exit {done.returncode}: {(done.stdout + done.stderr)[-300:]}")
    return done.returncode


@dataclass(frozen=True)
class KillReport:
    """What N kills at one point did to one project: the figures the table reports."""

    point: str
    command: str
    kills: int  # runs that died of SIGKILL at the point (should equal rounds)
    rounds: int
    acknowledged: int  # operations that exited 0 (the user was told "done")
    acknowledged_present: int  # of those, found afterwards
    killed_present: int  # operations killed at the point whose effect is visible anyway
    verify_after_kill_failures: int  # `verify` right after a kill, before any re-run
    rerun_failures: int  # the same command, re-run unarmed, did not succeed
    verify_final_exit: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.kills == self.rounds
            and self.acknowledged_present == self.acknowledged
            and self.rerun_failures == 0
            and self.verify_final_exit == 0
        )


def kill_ledger_appends(home: Path, point: str, rounds: int, per_round: int = 3) -> KillReport:
    """`log append` N times per round, then one append armed with `point`; after each kill,
    `verify`, then an unarmed re-run of the killed append."""
    if not (home / "config.toml").exists():
        assert run_cli(home, "init").returncode == 0
    acked: list[str] = []
    notes: list[str] = []
    kills = killed_present = verify_bad = rerun_bad = 0
    for r in range(rounds):
        for i in range(per_round):
            done = append_run(home, f"ok-{r}-{i}")
            if done.returncode == 0:
                acked.append(f"ok-{r}-{i}")
        victim = f"killed-{r}"
        kills += killed(append_run(home, victim, crash_at=point))
        killed_present += victim in run_ids(home)
        verify_bad += verify_exit(home, notes) != 0
        if victim not in run_ids(home):  # what a user does after a crash: try again
            again = append_run(home, victim)
            rerun_bad += again.returncode != 0
            if again.returncode != 0:
                notes.append(f"re-run exit {again.returncode}: {again.stderr[-300:]}")
            if again.returncode == 0:
                acked.append(victim)
    present = set(run_ids(home))
    return KillReport(
        point=point,
        command="ledgerml log append",
        kills=kills,
        rounds=rounds,
        acknowledged=len(acked),
        acknowledged_present=sum(a in present for a in acked),
        killed_present=killed_present,
        verify_after_kill_failures=verify_bad,
        rerun_failures=rerun_bad,
        verify_final_exit=verify_exit(home, notes),
        detail=" | ".join(notes)[:2000],
    )


def _init(home: Path) -> None:
    if not (home / "config.toml").exists():
        done = run_cli(home, "init")
        if done.returncode != 0:
            raise RuntimeError(f"init failed: {done.stderr[-300:]}")


def chain_anchor_count(home: Path) -> int:
    """Anchors of this project's AuditAnchor contract, as the chain reports them."""
    done = run_cli(home, "chain", "status", "--json")
    if done.returncode != 0:
        raise RuntimeError(f"chain status failed: {done.stderr[-300:]}")
    return int(json.loads(done.stdout)["anchors"] or 0)


def kill_anchoring(home: Path, rounds: int) -> KillReport:
    """`chain anchor` killed after its transaction is mined, before `checkpoint.anchored`
    is appended; then `verify`, and an unarmed re-run of `chain anchor`."""
    _init(home)
    if run_cli(home, "chain", "deploy").returncode != 0:
        raise RuntimeError("chain deploy failed")
    acked: list[str] = []
    notes: list[str] = []
    kills = verify_bad = rerun_bad = acked_anchors = 0
    for r in range(rounds):
        if append_run(home, f"an-{r}").returncode == 0:
            acked.append(f"an-{r}")
        kills += killed(run_cli(home, "chain", "anchor", crash_at="anchor.tx_sent"))
        verify_bad += verify_exit(home, notes) != 0
        again = run_cli(home, "chain", "anchor", "--json")
        rerun_bad += again.returncode != 0
        acked_anchors += again.returncode == 0
        if again.returncode != 0:
            notes.append(f"re-run exit {again.returncode}: {again.stderr[-300:]}")
    on_chain, mirrored = chain_anchor_count(home), count_type(home, "checkpoint.anchored")
    notes.append(f"{on_chain} anchors on chain, {mirrored} checkpoint.anchored entries in the log")
    present = set(run_ids(home))
    return KillReport(
        point="anchor.tx_sent",
        command="ledgerml chain anchor",
        kills=kills,
        rounds=rounds,
        acknowledged=len(acked),
        acknowledged_present=sum(a in present for a in acked),
        killed_present=on_chain - mirrored,  # anchors whose mirror entry never came
        verify_after_kill_failures=verify_bad,
        rerun_failures=rerun_bad,
        verify_final_exit=verify_exit(home, notes),
        detail=" | ".join(notes)[:2000],
    )


def vault_has(home: Path, subject: str) -> bool:
    from ledgerml.storage.vault import Vault

    return Vault(home / "vault.db").has(subject)


def kill_erasure(home: Path, point: str, csv: Path, subjects: list[str]) -> KillReport:
    """`data erase` killed at `point` once per subject; then `verify`, and the re-run a
    user would make. Acknowledged = erasures that exited 0: each must have its
    `subject.erased` entry and no key left."""
    _init(home)
    added = run_cli(
        home, "data", "add", str(csv), "--name", "people",
        "--pii", "name,iban", "--subject-col", "customer_id",
    )  # fmt: skip
    if added.returncode != 0:
        raise RuntimeError(f"data add failed: {added.stderr[-300:]}")
    notes: list[str] = []
    kills = verify_bad = rerun_bad = acked = acked_ok = half = 0
    for subject in subjects:
        kills += killed(run_cli(home, "data", "erase", "--subject", subject, crash_at=point))
        before = count_type(home, "subject.erased")
        if not vault_has(home, subject) and before < subjects.index(subject) + 1:
            half += 1  # key destroyed, erasure not on the ledger
        verify_bad += verify_exit(home, notes) != 0
        again = run_cli(home, "data", "erase", "--subject", subject)
        rerun_bad += again.returncode != 0
        if again.returncode != 0:
            notes.append(f"re-run exit {again.returncode}: {again.stderr[-200:]}")
        else:
            acked += 1
            acked_ok += not vault_has(home, subject)
    erased = count_type(home, "subject.erased")
    notes.append(f"{erased} subject.erased entries for {len(subjects)} erased subjects")
    return KillReport(
        point=point,
        command="ledgerml data erase",
        kills=kills,
        rounds=len(subjects),
        acknowledged=acked,
        acknowledged_present=min(acked_ok, erased),
        killed_present=half,  # erased in the vault but not recorded, right after the kill
        verify_after_kill_failures=verify_bad,
        rerun_failures=rerun_bad,
        verify_final_exit=verify_exit(home, notes),
        detail=" | ".join(notes)[:2000],
    )


def kill_bundle_export(home: Path, rounds: int) -> KillReport:
    """`audit export -o B.zip` killed while writing the zip; then `verify-bundle` on what
    is there, and the re-run."""
    _init(home)
    for i in range(5):
        append_run(home, f"bx-{i}")
    notes: list[str] = []
    kills = visible = rerun_bad = acked = acked_ok = 0
    for r in range(rounds):
        out = home.parent / f"bundle-{r}.zip"
        kills += killed(
            run_cli(
                home, "audit", "export", "--all", "-o", str(out), crash_at="bundle.export.partial"
            )
        )
        visible += out.exists()  # a half-written bundle under the name asked for
        leftovers = [p.name for p in home.parent.glob(f"bundle-{r}.zip*") if p != out]
        if leftovers:
            notes.append(f"after kill {r}: leftover {leftovers}")
        again = run_cli(home, "audit", "export", "--all", "-o", str(out))
        rerun_bad += again.returncode != 0
        if again.returncode == 0:
            acked += 1
            checked = run_cli(home, "audit", "verify-bundle", str(out))
            acked_ok += checked.returncode == 0
        else:
            notes.append(f"re-run exit {again.returncode}: {again.stderr[-200:]}")
        leftovers = [p.name for p in home.parent.glob(f"bundle-{r}.zip*") if p != out]
        if leftovers:
            notes.append(f"after re-run {r}: leftover {leftovers}")
    return KillReport(
        point="bundle.export.partial",
        command="ledgerml audit export",
        kills=kills,
        rounds=rounds,
        acknowledged=acked,
        acknowledged_present=acked_ok,
        killed_present=visible,
        verify_after_kill_failures=0,
        rerun_failures=rerun_bad,
        verify_final_exit=verify_exit(home, notes),
        detail=" | ".join(notes)[:2000],
    )


# ----------------------------------------------------------------------------- bench rows


def kill_point_rows(rounds: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    return []


def fault_rows(progress: Callable[[str], None]) -> list[dict[str, Any]]:
    return []


def fuzz_rows(examples: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    return []
