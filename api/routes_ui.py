"""The cluster page, served by every agent at `/` (static files from `api/ui/`, no build step).

Only a fixed set of files is served, read once at start (no path from the request ever reaches
the file system). The page holds no data: it reads the public API with the operator's token,
so the shell itself is served to anyone the API guard lets through. Its Content-Security-Policy
allows scripts and styles from this agent only: data from the API is put in the page as text,
and an injected `<script>` would not run anyway.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

from api.errors import ApiError

UI_DIR = Path(__file__).parent / "ui"
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def load_ui(directory: Path = UI_DIR) -> dict[str, bytes]:
    """The page and its assets, by name. A missing file is a broken install: fail at start."""
    return {name: (directory / name).read_bytes() for name in ("index.html", *ASSETS)}


def install_ui_routes(app: FastAPI) -> None:
    files = load_ui()

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(files["index.html"], media_type="text/html; charset=utf-8", headers=HEADERS)

    @app.get("/ui/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        media = ASSETS.get(name)
        if media is None:
            raise ApiError(404, "not_found", f"no page asset {name!r}")
        return Response(files[name], media_type=media, headers=HEADERS)
