"""A consortium of witnesses on one machine: one `ledgerml witness serve` process per bank
plus the auditor, for `ledgerml fl run --witnesses` and demonstrations.

Why: the federated-learning log is shared by the banks, so it should be published only
with their cosignatures. On one machine each bank's witness is its own process with its own
key in its own folder, exactly as it would run at the bank (docs/witnesses.md, "Consortium
layout"); only the host differs.

    with LocalConsortium(paths, ["B1", "B2", "B3", "B4", "B5"]) as consortium:
        ...                                   # write to the log
        report = consortium.publish()         # PublishReport: published with 3 of 5 banks?

Folders live in `<project>/witnesses/<name>/` (created once, reused: a witness remembers
what it cosigned); the policy is written to `<project>/witnesses/policy.txt`: the banks as
a group of ⌊n/2⌋+1, the auditor listed as a sixth witness that cosigns too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ledgerml.config import ProjectPaths
from ledgerml.crypto.files import make_private_dir
from ledgerml.errors import InputError, VerificationError
from ledgerml.witness.core import CONFIG, Witness, init_witness, load_keys
from ledgerml.witness.publisher import PublishReport, publish_once

AUDITOR = "auditor"
_CLI = (sys.executable, "-m", "ledgerml.cli.main")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by its PID (SIGKILL after 20 s if `sig` did not)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


@dataclass
class WitnessServer:
    """One `ledgerml witness serve --dir FOLDER` process on 127.0.0.1, stopped by its PID."""

    name: str
    folder: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path | None = None) -> WitnessServer:
        """Start serving; the process writes to `log` (appended) or nowhere."""
        cmd = [*_CLI, "witness", "serve", "--dir", str(self.folder), "--port", str(self.port)]
        if log is None:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            with log.open("ab") as out:  # the child keeps its copy
                self.proc = subprocess.Popen(cmd, stdout=out, stderr=out)
        return self

    def wait_ready(self, deadline: float) -> None:
        """Until GET /metrics answers 200; VerificationError if it exits or `deadline`
        (time.monotonic()) passes."""
        import httpx

        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise VerificationError(f"witness {self.name} exited at start (see its log)")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/metrics", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise VerificationError(f"witness {self.name} did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class LocalConsortium:
    """Start one witness process per member on 127.0.0.1; stop them by PID on exit."""

    def __init__(self, paths: ProjectPaths, banks: list[str], *, start_timeout_s: float = 60):
        if not banks or len(set(banks)) != len(banks):
            raise InputError("need one or more distinct bank names", field="banks")
        self.paths = paths
        self.folder = paths.home / "witnesses"
        self.banks = banks
        self.members = [WitnessServer(n, self.folder / n) for n in [*banks, AUDITOR]]
        self.policy_file = self.folder / "policy.txt"
        self.threshold = len(banks) // 2 + 1
        self.start_timeout_s = start_timeout_s

    def __enter__(self) -> LocalConsortium:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Path:
        """Create missing witnesses, trust the project's log keys, start them, write the
        policy; returns the policy file."""
        from ledgerml.ledger.project import log_verifiers

        vkeys = [v.vkey() for v in log_verifiers(self.paths)]
        make_private_dir(self.folder)  # holds the members' key folders
        lines = [f"# local consortium for {self.paths.home.name}", f"log {vkeys[0]}"]
        for m in self.members:
            if not (m.folder / CONFIG).exists():
                init_witness(m.folder, name=f"{m.name.lower()}.consortium.local/witness")
            w = Witness.open(m.folder)
            try:
                for vkey in vkeys:
                    w.add_log(vkey)
            finally:
                w.close()
            lines.append(f"witness {m.name} {load_keys(m.folder).verifiers()[0].vkey()} {m.url}")
        lines += [f"group banks {self.threshold} {' '.join(self.banks)}", "quorum banks"]
        for m in self.members:
            m.start(self.folder / f"{m.name}.log")
        self.policy_file.write_text("\n".join(lines) + "\n")
        deadline = time.monotonic() + self.start_timeout_s
        for m in self.members:
            m.wait_ready(deadline)
        return self.policy_file

    def publish(self) -> PublishReport:
        """Send the log's newest checkpoint to every member; published with the quorum."""
        return publish_once(self.paths, policy_path=str(self.policy_file))

    def stop(self) -> None:
        for m in self.members:
            m.stop()


class RoundWitnessing:
    """`fl run --witnesses`: the consortium starts at the first round (the bank names come
    with it) and the log's checkpoint is sent after every round and once at the end, so each
    round is cosigned as it is written, not only the finished run."""

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths
        self.consortium: LocalConsortium | None = None
        self.reports: list[PublishReport] = []

    def publish(self, banks: list[str]) -> PublishReport:
        """Publish the log's newest checkpoint (starting the consortium first if needed)."""
        if self.consortium is None:
            consortium = LocalConsortium(self.paths, banks)
            consortium.__enter__()
            self.consortium = consortium
        report = self.consortium.publish()
        self.reports.append(report)
        return report

    def close(self) -> None:
        if self.consortium is not None:
            self.consortium.stop()
