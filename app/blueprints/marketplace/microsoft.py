"""Microsoft's landing page: GET /marketplace/microsoft/landing?token=... (the "Landing page URL" of the offer's
technical configuration in Partner Center).

Microsoft opens it after a purchase ("Configure account") and for later visits ("Manage SaaS experience"), with
a token the query parsing has URL-decoded already. The purchase it stands for is resolved and recorded, then
`continue_with` leads to the subscription (set up already) or to setting it up. A token Microsoft refuses
(expired, forged, mangled) gets a page telling the customer to open "Configure account" again (400); Microsoft
unreachable, a page asking to try again (503). Never a 500.
"""

from __future__ import annotations

from flask import Response, g, render_template, request
from flask_login import current_user

from app.blueprints.marketplace import bp
from app.blueprints.marketplace.purchase import continue_with
from app.domain.marketplaces import Marketplace
from app.services import marketplaces
from app.services.actors import Actor
from app.services.errors import InvalidInput, ServiceError
from app.web.access import current_actor
from app.web.security import writes

MAX_TOKEN = 4096
MISSING = ("This page needs the link Microsoft opens for you. Please open your subscription in the Azure portal "
           "(or the Microsoft 365 admin center) and choose \"Configure account\" again.")


@bp.get("/marketplace/microsoft/landing")
def microsoft_landing() -> Response | tuple[str, int]:
    writes()  # it records the purchase
    token = request.args.get("token", "")
    if not token.strip() or len(token) > MAX_TOKEN:
        return _problem(MISSING, 400)
    actor = current_actor() if current_user.is_authenticated else Actor.marketplace(Marketplace.MICROSOFT.value)
    try:
        found = marketplaces.arrive(tenant=g.tenant, marketplace=Marketplace.MICROSOFT, token=token, actor=actor)
    except InvalidInput as error:
        return _problem(error.message, 400)
    except ServiceError as error:
        return _problem(error.message, 503)
    return continue_with(found)


def _problem(message: str, status: int) -> tuple[str, int]:
    return render_template("marketplace/microsoft_landing_problem.html", message=message, status=status), status
