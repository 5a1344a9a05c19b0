"""`/ui/analytics` and its static files (app/ui/static): outside the API and its OpenAPI document.

The page carries no token: it reads one from its form or its URL fragment (which browsers never send) and calls
`/api/v1/analytics/…` with it. A strict Content-Security-Policy lets it run only its own scripts and talk only to
this origin.
"""

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.ui import PAGES, STATIC_DIR

UI_PREFIX = "/ui"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)


@router.get("")
@router.get("/")
async def ui_index() -> RedirectResponse:
    return RedirectResponse(f"{UI_PREFIX}/analytics")


@router.get("/analytics")
async def analytics_page() -> FileResponse:
    """Funnel, time in stage and forecast of a type, drawn from the analytics API with the visitor's token."""
    return FileResponse(PAGES["analytics"], media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


class UiStaticFiles(StaticFiles):
    """The pages' scripts and styles, revalidated on each load (they change with the app's version)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(f"{UI_PREFIX}/static", UiStaticFiles(directory=STATIC_DIR), name="ui-static")
