"""The gateway serves the built web page at ``/`` (``web_dir``) without hiding the API.

The page is a stand-in build (an ``index.html`` and hashed-looking assets), so
these tests do not need Node.js; the real build is checked by ``npm run build``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.gateway.conftest import Gateway, gateway_settings, running_gateway

INDEX = (
    '<!doctype html><html lang="en"><head><title>tradebus</title></head>'
    '<body><div id="app"></div></body></html>\n'
)
SCRIPT = "console.log('tradebus');\n"
STYLE = "body { margin: 0; }\n"
ICON = '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>\n'


def _built_page(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "assets" / "index-AbC123.js").write_text(SCRIPT)
    (root / "assets" / "index-AbC123.css").write_text(STYLE)
    (root / "favicon.svg").write_text(ICON)
    return root


def _json_404(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "not_found"


async def test_page_assets_deep_links_and_api_untouched(
    nats_url: str, database_url: str, tmp_path: Path
) -> None:
    web = _built_page(tmp_path / "dist")
    settings = gateway_settings(nats_url, database_url, web_dir=str(web))
    async with running_gateway(settings, database_url) as gw, gw.client() as http:
        # the page at / and, for the page's own routes, at any other path
        for path in ("/", "/bots", "/bots/alice-ladder", "/accounts", "/admin/audit", "/login"):
            r = await http.get(path)
            assert r.status_code == 200, (path, r.status_code, r.text)
            assert r.headers["content-type"].startswith("text/html"), path
            assert r.text == INDEX, path

        # assets as they are, with their content types
        for path, body, kind in (
            ("/assets/index-AbC123.js", SCRIPT, "javascript"),
            ("/assets/index-AbC123.css", STYLE, "text/css"),
            ("/favicon.svg", ICON, "image/svg+xml"),
        ):
            r = await http.get(path)
            assert r.status_code == 200, path
            assert kind in r.headers["content-type"], (path, r.headers["content-type"])
            assert r.text == body

        # the API keeps its JSON answers: unknown API routes are JSON 404s, not the page
        for path in ("/api/v1/nope", "/api/v1/bots/x/nope/deeper", "/api", "/api/v2", "/healthz/x"):
            _json_404(await http.get(path))
        assert (await http.get("/healthz")).json()["status"] == "ok"
        r = await http.get("/api/v1/bots")
        assert r.status_code == 401
        assert r.json()["error"] == "unauthorized"
        assert gw.admin is not None
        signed_in = await gw.admin.get("/api/v1/bots")
        assert signed_in.status_code == 200
        assert isinstance(signed_in.json(), list)

        # the docs still work, and the page is no part of the API's description
        docs = await http.get("/api/docs/openapi.json")
        assert docs.status_code == 200
        paths = docs.json()["paths"]
        assert "/api/v1/bots" in paths
        assert not [p for p in paths if not p.startswith(("/api/", "/healthz"))], sorted(paths)
        assert (await http.get("/api/docs")).status_code == 200

        # only GET serves the page: other methods on a page path are not answered with it
        r = await http.post("/bots/x", json={})
        assert r.status_code in (404, 405)
        assert r.headers["content-type"].startswith("application/json")


async def test_no_page_without_web_dir(gateway: Gateway) -> None:
    assert gateway.settings.web_dir == ""
    async with gateway.client() as http:
        for path in ("/", "/bots/x", "/index.html"):
            _json_404(await http.get(path))
        assert (await http.get("/healthz")).status_code == 200
