"""The JSON API under /api/v1 (flask-smorest: marshmallow schemas, the OpenAPI document from the code).

- `base.py`: the blueprint factory every area uses (bearer tokens, scopes, rate limit, JSON bodies,
  problems), `actor()`, `@idempotent`, ETag/If-Match and cursor paging;
- `ids.py`: opaque ids (`sub_...`) and their route converter and schema field;
- one module per area (`plans.py`, `subscriptions.py`, `plan_changes.py`, `invoices.py`,
  `payment_methods.py`), registered in `init_app`.

Errors are problem details (app/web/api.py). The document is at /api/v1/openapi.json, readable at /api/docs
(`docs.py`).
"""

from __future__ import annotations

import http
from typing import Any

from flask import Flask
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields

from app.blueprints.api.ids import KINDS, OpaqueIdConverter
from app.extensions import csrf
from app.web.api import API_PREFIX, PROBLEM_JSON

SECURITY_SCHEMES = {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "ptk_..."}}


class ProblemSchema(Schema):
    """RFC 9457 problem details, as app/web/api.py writes them."""

    type = fields.String(required=True, metadata={"example": "https://portal.example/api/problems/not-found"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String()
    requestId = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "field -> messages, for validation problems"})


class PortalApi(Api):
    """flask-smorest's Api without its app-wide HTTP error handler: the portal's own (app/web/errors.py)
    answers problem+json under the API's prefix and HTML pages elsewhere. Error responses are documented
    as problem details."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        return None

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = ProblemSchema
            prepare_response(response, self.spec, PROBLEM_JSON if status >= 400 else "application/json")
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "A problem (RFC 9457)", "schema": ProblemSchema}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def init_app(app: Flask) -> None:
    from app.blueprints.api.admin_catalogue import blp as admin_catalogue
    from app.blueprints.api.admin_catalogue_lifecycle import blp as admin_lifecycle
    from app.blueprints.api.admin_customers import blp as admin_customers
    from app.blueprints.api.admin_usage import blp as admin_usage
    from app.blueprints.api.availability import blp as availability
    from app.blueprints.api.backorders import blp as backorders
    from app.blueprints.api.docs import bp as docs
    from app.blueprints.api.invoices import blp as invoices
    from app.blueprints.api.payment_methods import blp as payment_methods
    from app.blueprints.api.plan_changes import blp as plan_changes
    from app.blueprints.api.plans import blp as plans
    from app.blueprints.api.pricing import blp as pricing
    from app.blueprints.api.profile import blp as profile
    from app.blueprints.api.ssh_keys import blp as ssh_keys
    from app.blueprints.api.subscriptions import blp as subscriptions
    from app.blueprints.api.usage import admin_blp as usage_records
    from app.blueprints.api.usage import blp as usage

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
    for blp in (plans, subscriptions, pricing, availability, usage, usage_records, profile, ssh_keys, backorders,
                plan_changes, invoices, payment_methods, admin_customers, admin_catalogue, admin_lifecycle,
                admin_usage):
        csrf.exempt(blp)  # bearer tokens, never cookies: nothing for a cross-site form to ride on
        api.register_blueprint(blp, url_prefix=API_PREFIX + blp.url_prefix)
    app.extensions["portal_api"] = api
    app.register_blueprint(docs)  # /api/docs: the document, readable in a browser
