"""/api/docs: the API's reference, readable in a browser: Swagger UI (vendored under static/vendor, nothing
from a CDN) rendering /api/v1/openapi.json.

The page runs under the portal's own Content-Security-Policy, unchanged: Swagger UI is started by a script
file (static/js/api-docs.js), not an inline script, its stylesheet is a file, it sets element styles through
the DOM (which the policy allows) and its icons are data: images. "Try it out" calls the API on this origin
(connect-src 'self') with the token pasted under Authorize, which stays in the page's memory.
It is public, like the document it renders: it shows what the API accepts, never anyone's data.
"""

from __future__ import annotations

from flask import Blueprint, render_template

SWAGGER_UI = "vendor/swagger-ui-5.36.0"

bp = Blueprint("api_reference", __name__)


@bp.get("/api/docs")
def docs() -> str:
    return render_template("api/docs.html", swagger_ui=SWAGGER_UI)
