"""STACKIT's sign-up URL: where the STACKIT Marketplace sends a customer who subscribed, with
`?x-stackit-marketplace-token=<JWT>`. The token is checked (signature, issuer, expiry), resolved at STACKIT, and
the customer goes on to set the purchase up (or to their subscription, if it is set up already). A token that
is expired, used already or forged gets a page saying so (400), never an error page."""

from __future__ import annotations

from flask import Response, g, render_template, request
from flask_login import current_user

from app.blueprints.marketplace import bp
from app.blueprints.marketplace.purchase import continue_with
from app.domain.marketplaces import Marketplace
from app.services import marketplace_stackit, marketplaces
from app.services.actors import Actor
from app.services.errors import InvalidInput, ServiceError
from app.web.access import current_actor
from app.web.security import writes

TOKEN_PARAMETER = "x-stackit-marketplace-token"  # noqa: S105  (a parameter's name)


@bp.get("/marketplace/stackit/signup")
def stackit_signup() -> Response | tuple[str, int]:
    writes()  # it records the purchase
    token = request.args.get(TOKEN_PARAMETER, "").strip()
    actor = current_actor() if current_user.is_authenticated else Actor.marketplace(Marketplace.STACKIT.value)
    try:
        marketplace_stackit.verify_signup_token(g.tenant, token)
        found = marketplaces.arrive(tenant=g.tenant, marketplace=Marketplace.STACKIT, token=token, actor=actor)
    except InvalidInput as error:
        return _refused(error.message, 400)
    except ServiceError as error:
        return _refused(error.message, 503)
    return continue_with(found)


def _refused(message: str, status: int) -> tuple[str, int]:
    return render_template("marketplace/stackit_signup.html", problem=message,
                           store=Marketplace.STACKIT.store), status
