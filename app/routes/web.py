"""The public verify page at `/` and the API docs at `/docs`, both from files shipped in the package: no CDN,
so they work offline. Each page gets a Content-Security-Policy that allows only this origin's files."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
ASSETS = "/assets"
SWAGGER = f"{ASSETS}/vendor/swagger-ui"

# The page runs only its own script file; the reports it shows are attacker-controlled text.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
NO_REFERRER = {"Referrer-Policy": "no-referrer"}

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
def page() -> FileResponse:
    return FileResponse(
        WEB_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": PAGE_CSP, **NO_REFERRER},
    )


def _inline_script_hashes(html: str) -> str:
    """CSP source expressions for the inline scripts FastAPI's Swagger UI page carries (its start-up call)."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts
    )


def docs_page(openapi_url: str, title: str) -> HTMLResponse:
    response = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{title} - API docs",
        swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
        swagger_css_url=f"{SWAGGER}/swagger-ui.css",
        swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
    )
    html = bytes(response.body).decode()
    # Swagger UI sets inline styles and draws its icons from data: URIs.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' {_inline_script_hashes(html)}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    return response
