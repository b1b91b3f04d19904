"""`audit report`: one self-contained HTML file, opened in headless chromium, sections checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.audit.conftest import Demo
from tests.conftest import run_cli

SECTIONS = {
    "inventory": "Model inventory",
    "lineage": "Lineage",
    "metrics": "Metrics",
    "fairness": "Fairness by group",
    "drift": "Drift over time",
    "compliance": "Compliance results per rule",
    "approvals": "Approvals",
    "anchoring": "Anchoring status",
    "retention": "Retention status",
    "verification": "Verification",
}


@pytest.mark.slow
def test_report_opens_in_chromium_with_every_section(
    demo: Demo, browser: Any, tmp_path: Path
) -> None:
    out = tmp_path / "audit.html"
    r = run_cli(demo.home, "audit", "report", "-o", str(out), "--json")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["verify_ok"] and summary["models"] >= 1
    html = out.read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    for sid, title in SECTIONS.items():
        section = page.locator(f"section#{sid}")
        assert section.count() == 1, sid
        assert title in section.locator("h2").inner_text()
        assert len(section.inner_text()) > 40, sid
    # images: every one a data: URI that decoded in the browser
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.src.slice(0, 22), e.naturalWidth, e.alt])"
    )
    assert len(images) >= 5, images
    assert all(src.startswith("data:image/png;base64,") and w > 100 for src, w, _ in images)
    alts = " ".join(a for _, _, a in images)
    for needed in ("lineage graph", "PR curve", "false positives at fixed recall", "drift"):
        assert needed in alts, alts
    inventory = page.inner_text("section#inventory")
    assert demo.model_cid in inventory and "champion" in inventory
    assert "SR 26-2" in inventory
    compliance = page.inner_text("section#compliance")
    assert "GDPR" in compliance and "SR 26-2" in compliance and "pass" in compliance
    approvals = page.inner_text("section#approvals")
    assert "risk_approver" in approvals and "compliance_approver" in approvals
    assert "consistent with every one" in page.inner_text("section#anchoring")
    assert "183 days" in page.inner_text("section#retention")
    verification = page.inner_text("section#verification")
    assert "OK" in verification and f"\n{demo.tree_size}\n" in page.inner_text("#checkpoint-note")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    page.close()


def test_report_bad_output_exits_2(demo: Demo, tmp_path: Path) -> None:
    r = run_cli(demo.home, "audit", "report", "-o", str(tmp_path / "report.pdf"))
    assert r.returncode == 2 and "-o" in r.stderr
