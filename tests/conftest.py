"""Shared fixtures: real project folders and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    home: Path, *args: str, input_: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `ledgerml --home HOME ARGS…` as a user would, in a fresh process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    env.pop("LEDGERML_HOME", None)
    return subprocess.run(
        [sys.executable, "-m", "ledgerml.cli.main", "--home", str(home), *args],
        input=input_,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    home = tmp_path / "proj"

    def call(*args: str, input_: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, input_=input_)

    call.home = home  # type: ignore[attr-defined]
    return call


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def uvicorn_thread(app: Any, timeout: float = 60) -> Iterator[str]:
    """Serve `app` with real uvicorn in a thread on a free port; yields its URL, stops it after."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive(), "server thread died"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive()
