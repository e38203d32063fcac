"""Plan and quantity changes: refusals, effective dates, proration and resizes (no app, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.catalogue import ChangeRule, Interval
from app.domain.plan_changes import (
    ChangeAction,
    ChangeRefused,
    Current,
    PaymentMethodNeeded,
    Terms,
    carried_location,
    carried_server_type,
    preview_change,
    resize_target,
)
from app.domain.pricing import PlanPrice, prorate

START = datetime(2027, 1, 1, tzinfo=UTC)
END = datetime(2027, 2, 1, tzinfo=UTC)
MIDDLE = START + (END - START) / 2


def terms(plan_id: int, amount: int, *, orderable: bool = True, server_type: str | None = None,
          disk_gb: int | None = None, quantity_allowed: bool = False, max_quantity: int | None = None,
          interval: Interval = Interval.MONTH, currency: str = "EUR") -> Terms:
    return Terms(plan_id, f"Plan {plan_id}", PlanPrice(amount, currency, interval, quantity_allowed, max_quantity),
                 orderable, server_type, disk_gb)


def current(plan: Terms, *, quantity: int = 1, rule: ChangeRule = ChangeRule.PERIOD_END,
            migration_target_id: int | None = None) -> Current:
    return Current(plan, quantity, plan.price.unit_amount * quantity, START, END, rule, migration_target_id)


def change(action: ChangeAction, now_: datetime = MIDDLE, *, card: bool = True, quantity: int = 1, **kwargs):
    old, new = kwargs.pop("old"), kwargs.pop("new")
    return preview_change(action, current(old, **kwargs), new, quantity=quantity, now=now_,
                          new_price_minor=new.price.unit_amount * quantity, has_payment_method=card)


def test_an_upgrade_applies_now_with_a_credit_and_a_debit_to_the_second():
    found = change(ChangeAction.PLAN, old=terms(1, 1000), new=terms(2, 3000))

    assert found.immediate and found.upgrade and found.effective_at == MIDDLE
    assert found.proration is not None
    assert (found.proration.credit.amount, found.proration.debit.amount) == (-500, 1500)
    assert found.due_now.amount == 1000 and found.balance_credit.amount == 0
    assert found.new_price.amount == 3000


def test_a_downgrade_waits_for_the_period_end_and_charges_nothing_now():
    found = change(ChangeAction.PLAN, old=terms(1, 3000), new=terms(2, 1000))

    assert not found.immediate and found.effective_at == END and found.proration is None
    assert found.due_now.amount == 0


def test_a_downgrade_of_a_plan_whose_rule_is_immediate_applies_now_and_credits_the_balance():
    found = change(ChangeAction.PLAN, old=terms(1, 3000), new=terms(2, 1000), rule=ChangeRule.IMMEDIATE)

    assert found.immediate and found.effective_at == MIDDLE
    assert found.due_now.amount == 0 and found.balance_credit.amount == 1000


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"old": terms(1, 1000), "new": terms(1, 1000)}, "plan you have already"),
    ({"old": terms(1, 1000), "new": terms(2, 3000, orderable=False)}, "not available for new orders"),
    ({"old": terms(1, 1000), "new": terms(2, 3000, interval=Interval.YEAR)}, "keeps the billing interval"),
    ({"old": terms(1, 1000), "new": terms(2, 3000, currency="USD")}, "another currency"),
    ({"old": terms(1, 1000), "new": terms(2, 3000), "quantity": 2}, "single unit"),
    ({"old": terms(1, 1000), "new": terms(2, 3000, quantity_allowed=True, max_quantity=3), "quantity": 4},
     "at most 3"),
])
def test_changes_the_rules_refuse_say_why(kwargs, message):
    with pytest.raises(ChangeRefused, match=message):
        change(ChangeAction.PLAN, **kwargs)


def test_a_quantity_change_needs_a_plan_sold_by_quantity_and_another_quantity():
    seats = terms(1, 500, quantity_allowed=True, max_quantity=10)
    assert change(ChangeAction.QUANTITY, old=seats, new=seats, quantity=3).new_price.amount == 1500
    with pytest.raises(ChangeRefused, match="quantity you have already"):
        change(ChangeAction.QUANTITY, old=seats, new=seats, quantity=1)
    single = terms(2, 500)
    with pytest.raises(ChangeRefused, match="single unit"):
        change(ChangeAction.QUANTITY, old=single, new=single, quantity=2)


def test_a_quantity_change_keeps_a_deprecated_plan():
    seats = terms(1, 500, orderable=False, quantity_allowed=True)
    assert change(ChangeAction.QUANTITY, old=seats, new=seats, quantity=2).immediate


def test_a_migration_goes_only_to_the_plans_migration_target():
    old, new = terms(1, 1000, orderable=False), terms(2, 1200)
    assert change(ChangeAction.MIGRATE, old=old, new=new, migration_target_id=2).target.plan_id == 2
    with pytest.raises(ChangeRefused, match="no such migration target"):
        change(ChangeAction.MIGRATE, old=old, new=terms(3, 1200), migration_target_id=2)


def test_a_paid_target_needs_a_card_and_a_free_one_does_not():
    with pytest.raises(PaymentMethodNeeded, match="add a card"):
        change(ChangeAction.PLAN, old=terms(1, 0), new=terms(2, 1000), card=False)
    assert change(ChangeAction.PLAN, old=terms(1, 1000), new=terms(2, 0), card=False).new_price.amount == 0


def test_a_change_outside_the_current_period_is_refused_while_the_renewal_is_due():
    with pytest.raises(ChangeRefused, match="being renewed"):
        change(ChangeAction.PLAN, END, old=terms(1, 1000), new=terms(2, 3000))


def test_another_server_type_means_a_resize_and_a_smaller_disk_is_refused():
    small, big = terms(1, 500, server_type="cx22", disk_gb=40), terms(2, 900, server_type="cx32", disk_gb=80)
    assert resize_target(small, big) == "cx32"
    assert resize_target(small, terms(3, 700, server_type="cx22", disk_gb=40)) is None
    assert resize_target(terms(4, 0), terms(5, 100)) is None  # no servers
    with pytest.raises(ChangeRefused, match="disk can never shrink"):
        resize_target(big, small)
    with pytest.raises(ChangeRefused, match="disk can never shrink"):
        change(ChangeAction.PLAN, old=big, new=terms(6, 400, server_type="cx22", disk_gb=40))


moments = st.integers(min_value=0, max_value=int((END - START).total_seconds()) - 1)
amounts = st.integers(min_value=0, max_value=10**9)


@given(old=amounts, new=amounts, offset=moments, rule=st.sampled_from(ChangeRule))
def test_what_is_due_now_is_the_prorated_difference_rounded_per_line(old, new, offset, rule):
    moment = START + timedelta(seconds=offset)
    found = preview_change(ChangeAction.PLAN, current(terms(1, old), rule=rule), terms(2, new), quantity=1,
                           now=moment, new_price_minor=new, has_payment_method=True)
    if new < old and rule is ChangeRule.PERIOD_END:
        assert not found.immediate and found.due_now.amount == 0 and found.effective_at == END
        return
    assert found.proration == prorate(old, new, "EUR", START, END, moment)
    remaining, whole = (END - moment).total_seconds(), (END - START).total_seconds()
    exact = (new - old) * remaining / whole
    assert abs(found.proration.net.amount - exact) <= 1  # within one minor unit per line (two lines)
    assert found.due_now.amount - found.balance_credit.amount == found.proration.net.amount
    assert found.due_now.amount >= 0 and found.balance_credit.amount >= 0
    assert -found.proration.credit.amount <= old and found.proration.debit.amount <= new


def test_a_move_between_plans_with_other_usage_prices_is_refused():
    traffic = (("traffic_gb", 1, 1000),)
    metered = Terms(1, "Metered", PlanPrice(400, "EUR", Interval.MONTH), True, usage_prices=traffic)
    same = Terms(2, "Metered too", PlanPrice(900, "EUR", Interval.MONTH), True, usage_prices=traffic)
    assert change(ChangeAction.PLAN, old=metered, new=same).immediate
    with pytest.raises(ChangeRefused, match="usage at other prices"):
        change(ChangeAction.PLAN, old=metered, new=terms(3, 600))


def test_the_server_type_is_kept_when_the_target_offers_it_else_the_targets_default():
    assert carried_server_type("cx32", ["cx22", "cx32"], "cx22") == "cx32"
    assert carried_server_type("cx32", None, "cx22") == "cx32"  # a plan without its own list offers any type
    assert carried_server_type("cpx21", ["cx22", "cx32"], "cx22") == "cx22"
    assert carried_server_type(None, ["cx22"], "cx22") is None  # no servers, nothing to carry


def test_the_location_is_kept_and_a_target_not_offered_there_is_refused():
    assert carried_location("hel1", ["nbg1", "hel1"], "Big") == "hel1"
    assert carried_location("hel1", None, "Big") == "hel1"
    assert carried_location(None, ["nbg1"], "Big") is None
    with pytest.raises(ChangeRefused, match=r"Helsinki.*Big is not offered there.*cannot move"):
        carried_location("hel1", ["nbg1"], "Big")
