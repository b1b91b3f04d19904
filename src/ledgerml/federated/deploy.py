"""Deployment mode: a real `flower-superlink` and one `flower-supernode` per bank, as
separate processes on 127.0.0.1, running the same ServerApp and ClientApp.

Offline by construction: the SuperLink starts with
`--disable-runtime-dependency-installation` (no `uv sync`), the app is a local Flower
App folder whose components point at the installed `ledgerml.federated.apps`, Flower's
home is `<project>/.flwr` and telemetry is off. The run is submitted with `flwr run`
(Control API) and followed through `<workdir>/progress.jsonl`; every process started here
is stopped by its id, with the processes it started, on success and on failure.

    run_deployment(spec, progress)   # spec.save() done by the runner
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from ledgerml.federated.spec import RunSpec

CONNECTION = "ledgerml-local"
_APP_TOML = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "ledgerml-fl-aml"
version = "1.0.0"
description = "LedgerML federated AML (components come from the installed ledgerml)"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "ledgerml"

[tool.flwr.app.components]
serverapp = "ledgerml.federated.apps:server_app"
clientapp = "ledgerml.federated.apps:client_app"

[tool.flwr.app.config]
workdir = ""
"""


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f}s")


def _descendants(pid: int) -> list[int]:
    """PIDs of every process below `pid` (from /proc): Flower's SuperLink and SuperNodes
    start their SuperExec and app processes in sessions of their own."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every process started here and everything they started, by id: SIGTERM,
    a grace period, then SIGKILL for whatever is left."""
    tree: list[int] = []
    for p in procs:
        tree += _descendants(p.pid)
    _signal(tree, signal.SIGTERM)
    _signal([p.pid for p in procs if p.poll() is None], signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in reversed(procs):
        with suppress(subprocess.TimeoutExpired):
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
    for p in procs:
        tree += _descendants(p.pid)
    _signal(tree, signal.SIGKILL)
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)


def run_deployment(spec: RunSpec, progress: Callable[[dict[str, Any]], None] | None) -> None:
    """Start SuperLink + SuperNodes, submit the run, follow it, stop everything."""
    workdir = Path(spec.workdir)
    flwr_home = Path(spec.home) / ".flwr"
    flwr_home.mkdir(parents=True, exist_ok=True)
    app_dir = workdir / "app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "pyproject.toml").write_text(_APP_TOML)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    # Flower 1.42 serves the Fleet, Control and Runtime APIs over one HTTP port
    link_port = free_port()
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CONNECTION}"\n\n'
        f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
    )
    env = dict(
        os.environ,
        FLWR_HOME=str(flwr_home),
        FLWR_TELEMETRY_ENABLED="0",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    procs: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: str) -> subprocess.Popen[bytes]:
        fh = (logs / log).open("wb")
        p = subprocess.Popen(
            args,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
        fh.close()
        procs.append(p)
        return p

    try:
        link = start(
            [
                _bin("flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(link_port),
                "--health-server-address",
                f"127.0.0.1:{free_port()}",
            ],
            "superlink.log",
        )
        _wait_port(link_port, link, 60, "flower-superlink")
        for bank in spec.banks:
            node_config = (
                f"bank='{bank}' workdir='{workdir}' "
                f"data-dir='{spec.bank_dir(bank)}' "
                f"key-file='{Path(spec.home) / 'keys' / 'fl' / f'{bank}.pem'}'"
            )
            start(
                [
                    _bin("flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{link_port}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(free_port()),
                    "--node-config",
                    node_config,
                    "--health-server-address",
                    f"127.0.0.1:{free_port()}",
                ],
                f"supernode-{bank}.log",
            )
        submit = subprocess.run(
            [
                _bin("flwr"),
                "run",
                str(app_dir),
                CONNECTION,
                "--run-config",
                f"workdir='{workdir}'",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=120,
            check=False,
        )
        (logs / "flwr-run.log").write_text(submit.stdout + submit.stderr)
        if submit.returncode != 0:
            raise RuntimeError(f"flwr run failed: {(submit.stderr or submit.stdout)[-2000:]}")
        _follow(workdir, spec, procs, progress)
    finally:
        _stop(procs)


def _follow(
    workdir: Path,
    spec: RunSpec,
    procs: list[subprocess.Popen[bytes]],
    progress: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Report rounds as they land in progress.jsonl until result.json appears."""
    seen = 0
    deadline = time.monotonic() + spec.timeout + 30.0 * spec.rounds
    progress_file = workdir / "progress.jsonl"
    while time.monotonic() < deadline:
        if progress_file.exists():
            lines = progress_file.read_text().splitlines()
            for line in lines[seen:]:
                if progress is not None and line.strip():
                    progress(json.loads(line))
            seen = len(lines)
        if (workdir / "result.json").exists():
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(
                f"a Flower process exited early (code {dead[0].returncode}); see {workdir / 'logs'}"
            )
        time.sleep(0.3)
    raise RuntimeError(f"the deployment run did not finish in time; see {workdir / 'logs'}")
