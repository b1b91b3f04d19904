"""The auditor's pages under /audit/ over real HTTP (uvicorn) and in headless chromium."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerml.audit.bundle import verify_bundle
from tests.audit.conftest import KEYS, Demo, Server

READ_PATHS = [
    "/audit/api/checkpoint",
    "/audit/api/entries",
    "/audit/api/decisions",
    "/audit/api/trace?model=champion",
    "/audit/api/proof/0",
]


def test_roles(server: Server, demo: Demo) -> None:
    with server.client("auditor") as c:
        for path in [*READ_PATHS, "/audit/"]:
            assert c.get(path).status_code == 200, path
        # an auditor key cannot score, nor write anything under /audit/
        r = c.post("/v1/score", json={"features": {"V1": 0.0}})
        assert r.status_code == 403
        assert c.post("/audit/api/entries").status_code == 405
    with server.client("scorer") as c:
        for path in [*READ_PATHS, "/audit/", "/audit/api/bundle?model=champion"]:
            assert c.get(path).status_code == 403, path
    with server.client(None) as c:
        for path in READ_PATHS:
            assert c.get(path).status_code == 401, path
        page = c.get("/audit/")  # the static page holds no data; it asks for a key
        assert page.status_code == 200 and "X-API-Key" in page.text
        assert demo.decision_id not in page.text
    with server.client("wrong-key-0123456789") as c:
        assert c.get("/audit/").status_code == 401
    with server.client("admin") as c:
        assert c.get("/audit/api/checkpoint").status_code == 200


def test_bad_input_is_4xx(server: Server) -> None:
    with server.client("auditor") as c:
        assert c.get("/audit/api/decisions", params={"q": "dec-nope"}).status_code == 404
        assert c.get("/audit/api/trace", params={"decision": "dec-nope"}).status_code == 404
        assert c.get("/audit/api/trace").status_code == 422
        assert c.get("/audit/api/proof/99999999").status_code == 404
        assert c.get("/audit/api/entries", params={"limit": 0}).status_code == 422
        assert c.get("/audit/api/bundle", params={"decisions": "40..13"}).status_code == 422
        assert c.get("/audit/api/bundle", params={"decisions": "13-40"}).status_code == 422
        assert c.get("/audit/api/bundle", params={"model": "nope"}).status_code == 404


def test_api_trace_and_bundle_download(server: Server, demo: Demo, tmp_path: Path) -> None:
    with server.client("auditor") as c:
        t = c.get("/audit/api/trace", params={"decision": demo.alert_id}).json()
        assert t["ok"] and t["model_cid"] == demo.model_cid
        found = c.get("/audit/api/decisions", params={"q": demo.decision_id}).json()
        assert found["decisions"][0]["decision_id"] == demo.decision_id
        r = c.get("/audit/api/bundle", params={"model": "champion"})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    path = tmp_path / "b.zip"
    path.write_bytes(r.content)
    assert zipfile.ZipFile(io.BytesIO(r.content)).testzip() is None
    assert verify_bundle(path).ok


def _open_page(browser: Any, server: Server) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url + "/audit/")
    page.fill("#key", KEYS["auditor"])
    page.click("#use-key")
    page.wait_for_selector("#status:has-text('key accepted')")
    return page


def _result(page: Any, n: int) -> Any:
    """The verify result of the n-th trace step, once the browser has decided."""
    sel = f"#trace-table tr:nth-child({n + 2}) .verify-result"
    page.wait_for_selector(sel + "[data-ok]", timeout=15_000)
    return page.locator(sel)


@pytest.mark.slow
def test_pages_in_chromium_verify_button(
    browser: Any, server: Server, demo: Demo, tmp_path: Path
) -> None:
    page = _open_page(browser, server)
    # the key never appears in a URL
    seen: list[str] = []
    page.on("request", lambda req: seen.append(req.url))
    page.wait_for_selector("#entries table")
    page.wait_for_selector("#decision-results table")
    page.fill("#q", demo.alert_id)
    page.click("#search")
    page.wait_for_selector(f"#decision-results :text('{demo.alert_id}')")
    page.fill("#trace-q", demo.alert_id)
    page.click("#trace-decision")
    page.wait_for_selector("#trace-table")
    assert "every proof verifies" in page.inner_text("#trace-out")
    steps = page.inner_text("#trace-table")
    for step in ("decision", "model", "data set", "compliance check", "approval", "promotion"):
        assert step in steps
    # good proof: verified in the browser (leaf, path, root, Ed25519 signature)
    buttons = page.locator("#trace-table button.verify")
    assert buttons.count() >= 10
    buttons.nth(0).click()
    result = _result(page, 0)
    assert result.get_attribute("data-ok") == "true", result.inner_text()
    assert "Ed25519 signature" in result.inner_text()
    page.screenshot(path=str(tmp_path / "audit-pages.png"), full_page=True)
    assert (tmp_path / "audit-pages.png").stat().st_size > 10_000

    # tampered proof: one hash of the path changed in transit -> the browser says FAILED
    def tamper(route: Any) -> None:
        resp = route.fetch()
        doc = resp.json()
        h = doc["proof"]["hashes"][0]
        doc["proof"]["hashes"][0] = ("0" if h[0] != "0" else "1") + h[1:]
        route.fulfill(response=resp, body=json.dumps(doc))

    page.route("**/audit/api/proof/*", tamper)
    buttons.nth(1).click()
    bad = _result(page, 1)
    assert bad.get_attribute("data-ok") == "false"
    assert "does not lead to the checkpoint root" in bad.inner_text()

    # tampered entry bytes -> FAILED as well
    def tamper_entry(route: Any) -> None:
        resp = route.fetch()
        doc = resp.json()
        import base64

        raw = bytearray(base64.b64decode(doc["entry_b64"]))
        raw[10] ^= 1
        doc["entry_b64"] = base64.b64encode(bytes(raw)).decode()
        route.fulfill(response=resp, body=json.dumps(doc))

    page.unroute("**/audit/api/proof/*")
    page.route("**/audit/api/proof/*", tamper_entry)
    buttons.nth(2).click()
    bad2 = _result(page, 2)
    assert bad2.get_attribute("data-ok") == "false"
    page.unroute("**/audit/api/proof/*")

    # bundle download from the page (fetch with the key header, then a blob)
    page.fill("#bundle-model", "champion")
    with page.expect_download() as dl:
        page.click("#download")
    saved = tmp_path / "from-page.zip"
    dl.value.save_as(saved)
    assert verify_bundle(saved).ok
    assert all(KEYS["auditor"] not in u for u in seen)
    page.close()


@pytest.mark.slow
def test_scorer_key_is_refused_in_the_page(browser: Any, server: Server) -> None:
    page = browser.new_page()
    page.goto(server.url + "/audit/")
    page.fill("#key", KEYS["scorer"])
    page.click("#use-key")
    page.wait_for_selector("#status:has-text('key refused')")
    assert "403" in page.inner_text("#status")
    page.close()


_NUMBERISH = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=24),
    st.sampled_from(["1e999", "٣", "0\n", "00", "-0", "NaN"]),
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sampled_from(
        [
            ("/audit/api/entries", "start"),
            ("/audit/api/entries", "limit"),
            ("/audit/api/decisions", "q"),
            ("/audit/api/decisions", "limit"),
            ("/audit/api/trace", "decision"),
            ("/audit/api/trace", "model"),
            ("/audit/api/bundle", "decisions"),
            ("/audit/api/proof/", None),
        ]
    ),
    _NUMBERISH,
)
def test_auditor_api_never_500(server: Server, target: tuple[str, str | None], value: str) -> None:
    """Issue 17 item 5 for the auditor's API: any query value is answered or refused (4xx)."""
    path, param = target
    with server.client("auditor") as c:
        if param is None:
            r = c.get(path + quote(value, safe=""))
        else:
            r = c.get(path, params={param: value})
    assert r.status_code < 500, (path, param, value, r.status_code, r.text[:300])
    assert "Traceback" not in r.text
