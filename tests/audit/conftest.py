"""One demo project per test session (the real `ledgerml demo --synthetic`, ~20 s), a
real uvicorn server over it, and headless Debian chromium driven by Playwright."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerml.config import ProjectPaths
from tests.conftest import run_cli, uvicorn_thread

KEYS = {
    "scorer": "scorer-key-0123456789",
    "auditor": "auditor-key-0123456789",
    "admin": "admin-key-0123456789ab",
}
CHROMIUM = "/usr/bin/chromium"


@dataclass(frozen=True)
class Demo:
    home: Path
    model_cid: str
    decision_id: str
    alert_id: str
    tree_size: int


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """`ledgerml demo --synthetic` once per session; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("audit-demo")
    r = run_cli(root / "unused", "demo", "--dir", str(root / "demo"), "--synthetic", "--json",
                timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    home = Path(out["home"])
    rows = [json.loads(x) for x in (root / "demo" / "scoring-window.decisions.jsonl").open()]
    alert = next(d for d in rows if d.get("outcome") == "review")
    return Demo(home, out["model_cid"], rows[0]["decision_id"], alert["decision_id"],
                out["tree_size"])  # fmt: skip


def copy_demo(demo: Demo, dest: Path) -> ProjectPaths:
    shutil.copytree(demo.home, dest)
    return ProjectPaths(dest)


@dataclass
class Server:
    url: str
    paths: ProjectPaths

    def client(self, role: str | None = "auditor") -> httpx.Client:
        headers = {} if role is None else {"X-API-Key": KEYS.get(role, role)}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def server(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`ledgerml serve`'s app on a copy of the demo project, real uvicorn on a free port."""
    from ledgerml.serving.app import create_app

    paths = copy_demo(demo, tmp_path_factory.mktemp("served") / "proj")
    app = create_app(paths, api_keys=KEYS)
    with uvicorn_thread(app) as url:
        yield Server(url, paths)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium through Playwright (`playwright install` is not needed)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield b
        b.close()
