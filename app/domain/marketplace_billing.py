"""What the customer's pages say about a subscription that a marketplace bills, and which of its changes are the
customer's to make at the marketplace rather than in the portal.

The marketplace bills such a subscription: the portal issues no invoice, takes no card and promises no charge for
it; its pages name who bills it and where the customer manages it (`Marketplace.store`). The customer cancels (and
resumes) it at the marketplace, whichever it is; the portal follows what the marketplace reports.
"""

from __future__ import annotations

from app.domain.marketplaces import Marketplace


def billed_by(marketplace: Marketplace) -> str:
    return f"Billed by the {marketplace.label}"


def managed_at_marketplace(marketplace: Marketplace | None) -> bool:
    """Whether the plan and the quantity of the subscription are changed at the marketplace only.

    STACKIT: a plan change there is a new purchase (which the tenant links to the running subscription), so the
    portal offers none. Microsoft's changes may be asked of Microsoft from the portal, which applies them once
    Microsoft confirms."""
    return marketplace is Marketplace.STACKIT


def canceled_at_marketplace(marketplace: Marketplace | None) -> bool:
    """Whether the customer cancels and resumes the subscription at its marketplace: every marketplace's."""
    return marketplace is not None


def where_to_manage(marketplace: Marketplace) -> str:
    """The sentence that says where the customer changes, and cancels, what they bought."""
    if managed_at_marketplace(marketplace):
        return (f"Its plan, its quantity and its cancellation are changed on {marketplace.store}, where you bought it; "
                "the change then reaches this subscription by itself.")
    return (f"Its price, invoices and payment are with the {marketplace.label}: cancel it in {marketplace.store}, "
            "where you bought it.")
