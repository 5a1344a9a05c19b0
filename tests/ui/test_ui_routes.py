"""`/ui/analytics` and its static files are served (with a strict CSP), stay out of the OpenAPI document, and go away
with UI_ENABLED=false; the page carries no token of its own."""

from pathlib import Path

import httpx
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from app.ui import STATIC_DIR


def root_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_the_page_and_its_files_are_served(app: FastAPI) -> None:
    async with root_client(app) as http:
        page = await http.get("/ui/analytics")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert page.headers["referrer-policy"] == "no-referrer"
        assert 'src="static/vendor/chart.umd.min.js"' in page.text
        assert "sf_" not in page.text.replace("(sf_…)", "")  # no key baked in
        for path in (
            "analytics.js",
            "analytics.css",
            "favicon.svg",
            "vendor/chart.umd.min.js",
            "vendor/chart.js.LICENSE.md",
        ):
            response = await http.get(f"/ui/static/{path}")
            assert response.status_code == 200, path
            assert response.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/ui/static/../../settings.py")).status_code == 404
        assert (await http.get("/ui/static/nothing.js")).status_code == 404
        redirect = await http.get("/ui")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == "/ui/analytics"
        openapi = (await http.get("/openapi.json")).json()
        assert not [path for path in openapi["paths"] if path.startswith("/ui")]


def test_the_vendored_chart_library_keeps_its_licence() -> None:
    head = (STATIC_DIR / "vendor" / "chart.umd.min.js").read_text()[:300]
    assert "Chart.js v4." in head
    assert "MIT License" in head
    assert "MIT" in (STATIC_DIR / "vendor" / "chart.js.LICENSE.md").read_text()


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    """The service runs offline: every script, style and call stays on the app's origin."""
    for path in (STATIC_DIR / "analytics.html", STATIC_DIR / "analytics.js", STATIC_DIR / "analytics.css"):
        text = path.read_text()
        assert "http://" not in text
        assert "https://" not in text, path
        assert ".innerHTML" not in text, path
        assert "insertAdjacentHTML" not in text, path


async def test_ui_enabled_false_serves_no_page(settings: Settings) -> None:
    quiet = create_app(settings.model_copy(update={"UI_ENABLED": False}))
    async with root_client(quiet) as http:
        assert (await http.get("/ui/analytics")).status_code == 404
        assert (await http.get("/ui/static/analytics.js")).status_code == 404


def test_static_files_are_package_data() -> None:
    """pyproject ships app/ui/static in the wheel (the Dockerfile installs the wheel, not the tree)."""
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"app.ui" = ["static/*.html", "static/*.css", "static/*.js", "static/*.svg", "static/vendor/*"]' in pyproject
    kinds = {p.suffix for p in STATIC_DIR.glob("*") if p.is_file()}
    assert kinds <= {".html", ".css", ".js", ".svg"}, kinds
