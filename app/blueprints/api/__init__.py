"""The JSON API under /api/v1 (flask-smorest: marshmallow schemas, the OpenAPI document from the code).

- `base.py`: the blueprint factory every area uses (bearer tokens, scopes, rate limit, JSON bodies,
  problems), `actor()`, `@idempotent`, ETag/If-Match and cursor paging;
- `ids.py`: opaque ids (`sub_...`) and their route converter and schema field;
- one module per area (`subscriptions.py`), listed in `AREAS`.

Errors are problem details (app/web/api.py). The document is at /api/v1/openapi.json.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from app.blueprints.api.ids import KINDS, OpaqueIdConverter
from app.extensions import csrf
from app.web.api import API_PREFIX

SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "ptk_..."}}


class PortalApi(Api):
    """flask-smorest's Api without its app-wide HTTP error handler: the portal's own (app/web/errors.py)
    answers problem+json under the API's prefix and HTML pages elsewhere."""

    def _register_error_handlers(self) -> None:
        return None


def init_app(app: Flask) -> None:
    from app.blueprints.api.subscriptions import blp as subscriptions

    app.config.setdefault("API_TITLE", "Cloud portal API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.url_map.converters["opaque"] = OpaqueIdConverter
    api = PortalApi(app, spec_kwargs={
        "components": {"securitySchemes": SECURITY_SCHEMES},
        "security": [{"bearerAuth": []}],
    })
    api.register_converter(OpaqueIdConverter,
                           lambda converter: {"type": "string", "example": f"{KINDS[converter.kind]}_0k3m9xq"})
    for blp in (subscriptions,):
        csrf.exempt(blp)  # bearer tokens, never cookies: nothing for a cross-site form to ride on
        api.register_blueprint(blp, url_prefix=API_PREFIX + blp.url_prefix)
    app.extensions["portal_api"] = api
