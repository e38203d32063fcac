"""A free plan's limit counts the customer's free subscriptions of its product, whichever free plan of it."""

from __future__ import annotations

import pytest

from app.models import Subscription
from app.services.errors import InvalidInput
from tests import factories
from tests.services.conftest import complete_profile, count, place


def test_the_limit_is_per_product_whichever_free_plan_of_it(tenant, customer, sandbox):
    complete_profile(customer, card=False)
    trials = factories.product(tenant, name="Trials")
    small = factories.plan(tenant, product_=trials, price_minor=0, free_plan_limit=1)
    other_small = factories.plan(tenant, product_=trials, service_type_=small.service_type, price_minor=0,
                                 free_plan_limit=1)
    elsewhere = factories.plan(tenant, service_type_=small.service_type, price_minor=0, free_plan_limit=1)
    place(tenant, customer, small)
    with pytest.raises(InvalidInput, match="You already have 1 free Trials plan, the most one customer may hold"):
        place(tenant, customer, other_small)
    place(tenant, customer, elsewhere)  # another product's free plan is another trial
    assert count(Subscription) == 2


def test_a_higher_limit_lets_a_customer_hold_that_many(tenant, customer, sandbox):
    complete_profile(customer, card=False)
    plan = factories.plan(tenant, price_minor=0, free_plan_limit=2)
    place(tenant, customer, plan)
    place(tenant, customer, plan)
    with pytest.raises(InvalidInput, match=r"You already have 2 free .* plans"):
        place(tenant, customer, plan)
