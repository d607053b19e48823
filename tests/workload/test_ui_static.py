"""The web UI's files as the Management API serves them: pages, assets, caching and the CSP."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cluster_manager.management import static_routes

UI_DIR = Path(static_routes.__file__).resolve().parent.parent / "ui"
IMPORT = re.compile(r"""^import\s.*?from\s+'(\.{1,2}/[^']+)';""", re.MULTILINE | re.DOTALL)


@pytest.fixture
async def http(server, settings) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTPS client of the running management server."""
    context = ssl.create_default_context(cafile=settings.management_cert_file)
    async with aiohttp.ClientSession(
        base_url=f"https://127.0.0.1:{settings.management_port}",
        connector=aiohttp.TCPConnector(ssl=context),
    ) as session:
        yield session


def ui_version() -> str:
    return static_routes.load_ui_files().version


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/clusters",
        "/clusters/edge-1",
        "/enrol",
        "/settings",
        "/instances",
        "/audit",
        "/clusters/edge-1/instances",
    ],
)
async def test_every_page_of_the_ui_is_index_html_with_a_strict_policy(http, path):
    async with http.get(path) as response:
        body = await response.text()

    assert response.status == 200, body
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    assert f"/ui/{ui_version()}/js/main.js" in body
    assert static_routes.VERSION_PLACEHOLDER not in body


@pytest.mark.parametrize("path", ["/no-such-page", "/clusters/", "/clusters/edge-1/more"])
async def test_unknown_page_asked_for_by_a_browser_is_the_ui_with_status_404(http, path):
    async with http.get(path, headers={"Accept": "text/html,application/xhtml+xml"}) as response:
        body = await response.text()

    assert response.status == 404, body
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert f"/ui/{ui_version()}/js/main.js" in body


@pytest.mark.parametrize(
    ("method", "path", "accept"),
    [
        ("GET", "/no-such-page", "application/json"),
        ("GET", "/no-such-page", "*/*"),
        ("POST", "/no-such-page", "text/html"),
        ("GET", "/1.0/no-such-thing", "text/html"),
        ("GET", "/oidc/no-such-thing", "text/html"),
        ("GET", "/ui/0123456789abcdef/nothing.js", "text/html"),
    ],
)
async def test_unknown_path_outside_the_pages_stays_a_json_error(http, method, path, accept):
    async with http.request(method, path, headers={"Accept": accept}) as response:
        body = await response.json()

    assert response.status in (401, 404), body
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["type"] == "error"


async def test_assets_have_their_type_and_are_cached_for_their_version(http):
    version = ui_version()
    expected = {
        "js/main.js": "text/javascript; charset=utf-8",
        "app.css": "text/css; charset=utf-8",
        "icons/logo.svg": "image/svg+xml",
    }
    for path, content_type in expected.items():
        async with http.get(f"/ui/{version}/{path}") as response:
            body = await response.read()
            assert response.status == 200, (path, body[:200])
            assert response.headers["Content-Type"] == content_type
            assert response.headers["Cache-Control"] == static_routes.CACHE_FOREVER
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert body == (UI_DIR / path).read_bytes()


async def test_unchanged_asset_is_not_sent_again(http):
    path = f"/ui/{ui_version()}/app.css"
    async with http.get(path) as first:
        etag = first.headers["ETag"]
    async with http.get(path, headers={"If-None-Match": etag}) as again:
        assert again.status == 304
        assert await again.read() == b""


async def test_asset_of_another_release_is_served_but_not_cached(http):
    async with http.get("/ui/0123456789abcdef/app.css") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    "path",
    [
        "/ui/{v}/nothing.js",
        "/ui/{v}/../settings.py",
        "/ui/{v}/js/../../db.py",
        "/ui/{v}/index.html",
    ],
)
async def test_unknown_or_escaping_asset_paths_are_not_found(http, path):
    async with http.get(path.format(v=ui_version())) as response:
        body = await response.text()
    assert response.status == 404, body
    assert "import " not in body


def test_index_has_no_inline_script_or_style():
    html = (UI_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert "<style" not in html
    assert " style=" not in html
    assert " on" not in re.sub(r"\s(content|name|href|src|alt|class|id|lang)=\"[^\"]*\"", "", html)


def test_every_module_import_names_a_shipped_file():
    for module in UI_DIR.rglob("*.js"):
        for target in IMPORT.findall(module.read_text()):
            assert (module.parent / target).resolve().is_file(), (module, target)


def test_scripts_never_turn_strings_into_markup():
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function"
    )
    for module in UI_DIR.rglob("*.js"):
        found = forbidden.findall(module.read_text())
        assert not found, (module, found)
