"""Scenario code shared by `tests/reliability/` and `bench/bench_reliability.py`.

The tests assert on what these functions observe; the bench prints the same
observations as `fault -> expected -> observed` rows. Everything runs the real CLI
in a subprocess (`python -m ledgerml.cli.main`), so a kill point's SIGKILL takes
down exactly what a user's process would be.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
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
    config.chmod(0o600)  # it now holds a secret
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


# ----------------------------------------------------------------------------- faults


def traceback_in(result: subprocess.CompletedProcess[str]) -> bool:
    return "Traceback (most recent call last)" in (result.stdout + result.stderr)


def can_mount() -> str | None:
    """None when this process may mount a tmpfs, else the reason it may not."""
    if os.geteuid() != 0:
        return "not root: cannot mount a small tmpfs to fill"
    probe = Path(tempfile.mkdtemp(prefix="ledgerml-mount-probe-"))
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return f"mount refused here: {done.stderr.strip()[:200]}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


@contextmanager
def small_tmpfs(where: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` for the block; always unmounted after."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(folder: Path) -> Path:
    """Write a file in `folder` until the filesystem is full (ENOSPC); returns it."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def jsonl_runs(path: Path, prefix: str, n: int, pad: int = 0) -> Path:
    """A JSONL file of `n` run.started entries (`pad` extra bytes each, to need space)."""
    lines = [
        json.dumps(
            {
                "type": "run.started",
                "body": {
                    "run_id": f"{prefix}-{i}",
                    "dataset_cids": [],
                    "model_type": "x" * max(1, pad),
                },
            }
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class FaultReport:
    """One fault against the real CLI: what the user saw and what the log holds after."""

    fault: str
    acknowledged: int
    acknowledged_present: int
    failed_exit: int  # exit code of the command that met the fault
    failed_message: str  # its last words (no traceback expected)
    traceback: bool
    failed_entries_present: int  # entries of the refused command visible afterwards
    failed_entries_total: int
    verify_during_exit: int  # `verify` while the fault is still there
    rerun_exit: int  # the same command once the fault is gone
    verify_final_exit: int
    detail: str = ""


def disk_full(root: Path, batch: int = 400) -> FaultReport:
    """`log append --jsonl` of `batch` entries into a project on a full tmpfs."""
    with small_tmpfs(root / "mnt") as mnt:
        home = mnt / "p"
        _init(home)
        acked = [f"df-{i}" for i in range(3) if append_run(home, f"df-{i}").returncode == 0]
        src = jsonl_runs(root / "batch.jsonl", "full", batch, pad=200)
        filler = fill(mnt)
        failed = run_cli(home, "log", "append", "--jsonl", str(src))
        notes: list[str] = []
        during = verify_exit(home, notes)
        filler.unlink()
        return _after_batch_fault(
            "disk full (tmpfs 8 MiB filled to ENOSPC)", home, src, acked, failed, during, notes
        )


def _after_batch_fault(
    fault: str,
    home: Path,
    src: Path,
    acked: list[str],
    failed: subprocess.CompletedProcess[str],
    during: int,
    notes: list[str],
) -> FaultReport:
    """Once the fault is gone: what of the failed batch is visible, then re-run and verify."""
    batch = [json.loads(line)["body"]["run_id"] for line in src.read_text().splitlines()]
    present = set(run_ids(home))
    failed_present = sum(r in present for r in batch)
    again = run_cli(home, "log", "append", "--jsonl", str(src))
    present = set(run_ids(home))
    return FaultReport(
        fault=fault,
        acknowledged=len(acked),
        acknowledged_present=sum(a in present for a in acked),
        failed_exit=failed.returncode,
        failed_message=failed.stderr.strip()[-300:],
        traceback=traceback_in(failed),
        failed_entries_present=failed_present,
        failed_entries_total=len(batch),
        verify_during_exit=during,
        rerun_exit=again.returncode,
        verify_final_exit=verify_exit(home, notes),
        detail=" | ".join(notes)[:1000],
    )


SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* fsync/fdatasync fail with EIO for files under $LEDGERML_EIO_UNDER: what a dying disk
   reports. Writes still land in the page cache; only the durability call fails. */
static int under(int fd) {
    const char *prefix = getenv("LEDGERML_EIO_UNDER");
    char link[64], target[4096];
    ssize_t n;
    if (!prefix || !*prefix) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof target - 1);
    if (n < 0) return 0;
    target[n] = 0;
    return strncmp(target, prefix, strlen(prefix)) == 0;
}
int fsync(int fd) {
    static int (*real)(int);
    if (under(fd)) { errno = EIO; return -1; }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
int fdatasync(int fd) {
    static int (*real)(int);
    if (under(fd)) { errno = EIO; return -1; }
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return real(fd);
}
"""


def build_eio_shim(folder: Path) -> Path | str:
    """Compile the fsync-EIO shim with gcc (test-only); the reason when that is impossible."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return "gcc not installed: cannot build the fsync-EIO shim"
    src, lib = folder / "eio_shim.c", folder / "eio_shim.so"
    src.write_text(SHIM_C)
    done = subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"],
        capture_output=True,
        text=True,
        check=False,
    )
    return lib if done.returncode == 0 else f"gcc failed: {done.stderr[-200:]}"


def fsync_eio(root: Path, shim: Path, batch: int = 50) -> FaultReport:
    """`log append --jsonl` while every fsync/fdatasync under the project fails with EIO."""
    home = root / "p"
    _init(home)
    acked = [f"io-{i}" for i in range(3) if append_run(home, f"io-{i}").returncode == 0]
    src = jsonl_runs(root / "batch.jsonl", "eio", batch)
    env = cli_env(LD_PRELOAD=str(shim), LEDGERML_EIO_UNDER=str(home.resolve()))
    failed = subprocess.run(
        cli_argv(home, "log", "append", "--jsonl", str(src)),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    during = subprocess.run(
        cli_argv(home, "verify"), capture_output=True, text=True, env=env, check=False
    ).returncode
    return _after_batch_fault(
        "fsync/fdatasync -> EIO under the project (LD_PRELOAD shim, test-only)",
        home, src, acked, failed, during, [],
    )  # fmt: skip


ANVIL = REPO / "tools" / "solc" / "node_modules" / ".bin" / "anvil"


def _rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    import httpx

    r = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}, timeout=5
    )
    return r.json().get("result")


@contextmanager
def anvil_node(state: Path, port: int) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Our own anvil on `port`, its state kept in `state` across restarts; stopped after
    (SIGTERM to the process group we started, so the binary under the npm wrapper too)."""
    proc = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--silent", "--state", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _rpc(url, "eth_chainId"):
                    break
            except Exception:  # not listening yet
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("anvil did not start")
            time.sleep(0.1)
        yield url, proc
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started in its own session, and everything in its group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def chain_stops_mid_anchor(root: Path) -> FaultReport:
    """`chain anchor` against anvil with mining paused; anvil is stopped while the anchor
    transaction waits in its pool. Then anvil restarts from its saved state and the
    anchor is run again."""
    if not ANVIL.exists():
        raise FileNotFoundError(f"{ANVIL} (npm ci in tools/solc)")
    home, state, port = root / "p", root / "anvil-state.json", free_port()
    _init(home)
    config = home / "config.toml"
    with anvil_node(state, port) as (url, node):
        text = config.read_text()
        config.write_text(text.replace("# rpc_url = ", f'rpc_url = "{url}"\n# was: ', 1))
        if run_cli(home, "chain", "deploy").returncode != 0:
            raise RuntimeError("chain deploy on anvil failed")
        acked = [f"cs-{i}" for i in range(3) if append_run(home, f"cs-{i}").returncode == 0]
        _rpc(url, "evm_setAutomine", [False])  # the next transaction waits in the pool
        anchoring = subprocess.Popen(
            cli_argv(home, "chain", "anchor"),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while int(str((_rpc(url, "txpool_status") or {}).get("pending", "0x0")), 16) == 0:
            if anchoring.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        pending = anchoring.poll() is None
        stop_group(node)  # the node goes away mid-transaction
        out, err = anchoring.communicate(timeout=180)
    failed = subprocess.CompletedProcess(anchoring.args, anchoring.returncode, out, err)
    mirrored = count_type(home, "checkpoint.anchored")
    during = verify_exit(home)  # the chain is down: fail closed
    skip = run_cli(home, "verify", "--skip-anchors").returncode
    with anvil_node(state, port):
        again = run_cli(home, "chain", "anchor")
        final = verify_exit(home)
        on_chain = chain_anchor_count(home)
    present = set(run_ids(home))
    return FaultReport(
        fault="chain node (anvil) stopped while the anchor tx is pending",
        acknowledged=len(acked),
        acknowledged_present=sum(a in present for a in acked),
        failed_exit=failed.returncode,
        failed_message=failed.stderr.strip()[-300:],
        traceback=traceback_in(failed),
        failed_entries_present=mirrored,
        failed_entries_total=1,
        verify_during_exit=during,
        rerun_exit=again.returncode,
        verify_final_exit=final,
        detail=(
            f"tx was pending when the node stopped: {pending}; verify --skip-anchors during "
            f"the outage exit {skip}; after restart {on_chain} anchor(s) on chain, "
            f"{count_type(home, 'checkpoint.anchored')} mirrored"
        ),
    )


# ----------------------------------------------------------------------------- bench rows

KILL_EXPECTED = (
    "every acknowledged operation present; nothing half-written visible (verify passes "
    "right after the kill); an unarmed re-run succeeds; verify passes"
)


def _kill_row(rep: KillReport) -> dict[str, Any]:
    observed = (
        f"{rep.kills}/{rep.rounds} runs killed; acknowledged {rep.acknowledged}, present "
        f"{rep.acknowledged_present}; killed operation visible after the kill "
        f"{rep.killed_present}; verify failed right after a kill {rep.verify_after_kill_failures}"
        f"x; re-run failures {rep.rerun_failures}; final verify exit {rep.verify_final_exit}"
    )
    extra_ok = rep.killed_present == 0 or rep.point.startswith("ledger.")
    return {
        "fault": f"SIGKILL at {rep.point} ({rep.command})",
        "expected": KILL_EXPECTED,
        "observed": observed + (f" ({rep.detail})" if rep.detail else ""),
        "ok": rep.ok and extra_ok and rep.verify_after_kill_failures == 0,
        "figures": asdict(rep),
    }


def kill_point_rows(rounds: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Every kill point, `rounds` kills each, in fresh temporary projects."""
    from tests.datasets.conftest import PEOPLE, people_csv

    rows = []
    with tempfile.TemporaryDirectory(prefix="ledgerml-kill-") as tmp:
        root = Path(tmp)
        for point in (
            "ledger.append.before_commit",
            "ledger.append.after_commit",
            "ledger.checkpoint.signed",
            "ledger.checkpoint.saved",
        ):
            progress(f"{rounds} kills at {point}")
            rows.append(_kill_row(kill_ledger_appends(root / point, point, rounds, per_round=3)))
        progress(f"{rounds} kills at anchor.tx_sent")
        rows.append(_kill_row(kill_anchoring(root / "anchor", rounds)))
        csv = people_csv(root / "people.csv")
        for point in ("vault.erase.before_commit", "vault.erase.committed"):
            progress(f"kills at {point}")
            rows.append(_kill_row(kill_erasure(root / point, point, csv, list(PEOPLE))))
        progress(f"{rounds} kills at bundle.export.partial")
        rows.append(_kill_row(kill_bundle_export(root / "bundle", rounds)))
    return rows


def _fault_row(rep: FaultReport, expected: str, ok: bool) -> dict[str, Any]:
    observed = (
        f"exit {rep.failed_exit} ({rep.failed_message[:220]!r}); traceback {rep.traceback}; "
        f"acknowledged {rep.acknowledged}, present {rep.acknowledged_present}; entries of the "
        f"failed command visible {rep.failed_entries_present}/{rep.failed_entries_total}; "
        f"verify during the fault exit {rep.verify_during_exit}; re-run exit {rep.rerun_exit}; "
        f"final verify exit {rep.verify_final_exit}"
    )
    return {
        "fault": rep.fault,
        "expected": expected,
        "observed": observed + (f" ({rep.detail})" if rep.detail else ""),
        "ok": ok,
        "figures": asdict(rep),
    }


def _recovered(rep: FaultReport) -> bool:
    return (
        not rep.traceback
        and rep.failed_exit != 0
        and rep.acknowledged_present == rep.acknowledged
        and rep.failed_entries_present in (0, rep.failed_entries_total)
        and rep.rerun_exit == 0
        and rep.verify_final_exit == 0
    )


def fault_rows(progress: Callable[[str], None]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledgerml-fault-") as tmp:
        root = Path(tmp)
        reason = can_mount()
        if reason is None:
            progress("disk full")
            rep = disk_full(root / "disk")
            rows.append(
                _fault_row(
                    rep,
                    "exit 2 naming the disk; the batch all or nothing; recovers once space "
                    "is freed",
                    _recovered(rep) and rep.failed_exit == 2,
                )
            )
        else:
            rows.append({"fault": "disk full", "skipped": reason})
        shim = build_eio_shim(root)
        if isinstance(shim, Path):
            progress("fsync EIO")
            (root / "eio").mkdir()
            rep = fsync_eio(root / "eio", shim)
            rows.append(
                _fault_row(
                    rep,
                    "non-zero exit, never acknowledged; nothing half-visible; recovers",
                    _recovered(rep),
                )
            )
        else:
            rows.append({"fault": "fsync EIO", "skipped": shim})
        if ANVIL.exists():
            progress("chain node stopped mid-anchor")
            (root / "anvil").mkdir()
            rep = chain_stops_mid_anchor(root / "anvil")
            rows.append(
                _fault_row(
                    rep,
                    "anchor exits 1 without a traceback; no checkpoint.anchored for an unmined "
                    "tx; verify fails closed while the node is down; re-run anchors once",
                    _recovered(rep) and rep.failed_entries_present == 0,
                )
            )
        else:
            rows.append({"fault": "chain node stopping", "skipped": f"{ANVIL} missing"})
    return rows


def fuzz_rows(examples: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run tests/reliability/test_fuzz.py with `examples` hypothesis examples per parser;
    one row per test (and the atheris figures from fuzz/results.json when present)."""
    import xml.etree.ElementTree as ET

    progress(f"hypothesis fuzzing, {examples} examples per parser")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledgerml-fuzz-") as tmp:
        report = Path(tmp) / "junit.xml"
        env = dict(os.environ, LEDGERML_FUZZ_EXAMPLES=str(examples))
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             f"--junitxml={report}", str(REPO / "tests" / "reliability" / "test_fuzz.py")],
            cwd=REPO, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        for case in ET.parse(report).getroot().iter("testcase"):
            failure = case.find("failure")
            if failure is None:
                failure = case.find("error")
            skipped = case.find("skipped")
            seconds = float(case.get("time", 0))
            if failure is not None:
                observed = f"FAILED: {(failure.get('message') or '')[:300]}"
            elif skipped is not None:  # xfail: a known bug another engineer is fixing
                observed = f"known bug (xfail): {(skipped.get('message') or '')[:300]}"
            else:
                observed = f"passed in {seconds:.1f}s"
            rows.append(
                {
                    "fault": f"fuzz ({examples} examples per hypothesis test): {case.get('name')}",
                    "expected": "refused with a named field (exit 2 / 4xx) or accepted; no "
                    "crash, 500 or traceback; no forgery verifies",
                    "observed": observed,
                    "ok": failure is None and skipped is None,
                }
            )
    results = REPO / "fuzz" / "results.json"
    if results.exists():
        for r in json.loads(results.read_text()):
            rows.append(
                {
                    "fault": f"atheris (coverage-guided): {r['target']}",
                    "expected": "no uncaught exception, no forged input accepted",
                    "observed": f"{r['executions']:,} executions in {r['seconds']}s, "
                    f"{r['coverage_edges']} edges, findings {r['findings'] or 'none'} "
                    "(fuzz/results.json, from fuzz/run_all.py)",
                    "ok": not r["findings"],
                }
            )
    return rows
