"""Real witness processes (`ledgerml witness serve`) on free ports, stopped by PID."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledgerml.cli.main import main as cli_main
from ledgerml.witness.consortium import stop_process
from tests.conftest import free_port

CLI = (sys.executable, "-m", "ledgerml.cli.main")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`ledgerml ARGS…` in a fresh process, as an operator runs it."""
    env = dict(os.environ, COLUMNS="300")
    env.pop("LEDGERML_WITNESS_DIR", None)
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """`ledgerml ARGS…` through the CLI's own entry point in this process (same code, exit
    code and output as the command, without a second of Python start-up per call)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@dataclass
class WitnessProcess:
    """One witness folder and the server process serving it (None when stopped)."""

    name: str
    dir: Path
    vkeys: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WitnessProcess:
        assert self.proc is None
        log = (self.dir.parent / f"{self.dir.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [*CLI, "witness", "serve", "--dir", str(self.dir), "--port", str(self.port)],
            stdout=log,
            stderr=log,
        )
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None and self.proc.poll() is None, "witness died at start"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/metrics", timeout=1).status_code == 200:
                    return
            assert time.monotonic() < deadline, "witness did not start"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop our own process by its PID (SIGKILL simulates a crash)."""
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None

    def add_log(self, vkey: str) -> None:
        """`ledgerml witness add-log VKEY` (the CLI's code, in this process: no start-up
        cost); the serving process reads trusted logs from witness.db on each request."""
        assert cli_main(["witness", "add-log", vkey, "--dir", str(self.dir)]) == 0


def make_witness(base: Path, name: str, *, pq: bool = False) -> WitnessProcess:
    """`ledgerml witness init --name NAME --json` in `base/<first part of NAME>`."""
    folder = base / name.split("/")[0]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the CLI's code in this process: no start-up cost
        code = cli_main(["witness", "init", "--name", name, "--dir", str(folder), "--json"]
                        + ["--pq"] * pq)  # fmt: skip
    assert code == 0
    return WitnessProcess(name, folder, json.loads(out.getvalue())["vkeys"])


def start_all(witnesses: list[WitnessProcess]) -> None:
    """Start in parallel (each process imports the CLI: about a second)."""
    for w in witnesses:
        if w.proc is None:
            w.start()
    for w in witnesses:
        w.wait_ready()
