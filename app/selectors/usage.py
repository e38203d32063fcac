"""Reads of metered usage: a subscription's usage per period with its cost, for the customer's usage page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.sql import func

from app.clock import now
from app.domain.billing import ChargeKind
from app.domain.charts import BarChart, bar_chart
from app.domain.usage import TAKES_USAGE, MeteredPrice, UsageError, UsageLine, lines, metered_prices, record_period
from app.extensions import db
from app.models import Charge, Plan, Subscription, TenantLike, UsageRecord, User
from app.selectors.subscriptions import customer_subscription

PERIODS = 12  # past periods shown


@dataclass(frozen=True)
class PeriodUsage:
    start: datetime
    end: datetime
    lines: tuple[UsageLine, ...]
    billed: bool  # the billing run has turned it into charges
    billed_minor: int  # what those charges came to (0 when every unit was included)

    @property
    def cost_minor(self) -> int:
        """What the units cost at the plan's prices (the running cost of an open period)."""
        return sum(line.amount_minor for line in self.lines)


@dataclass(frozen=True)
class UsageSummary:
    subscription: Subscription
    prices: tuple[MeteredPrice, ...]
    current: PeriodUsage | None  # None when the subscription takes no usage now
    past: tuple[PeriodUsage, ...]  # newest first
    charts: tuple[BarChart, ...]  # one per metric: units per period, oldest first


def subscription_usage(tenant: TenantLike, customer: User, subscription_id: int) -> UsageSummary | None:
    """The customer's usage-based subscription's usage: this period, the last PERIODS, a chart per metric.

    None if the subscription is not theirs or its plan meters nothing. Three statements.
    """
    subscription = customer_subscription(tenant, customer, subscription_id, items=False)
    if subscription is None:
        return None
    try:
        prices = metered_prices(subscription.plan.usage_prices)
    except UsageError:
        return None
    if not prices:
        return None
    periods = _periods(subscription, prices)
    current = _current(subscription, prices, periods)
    past = tuple(period for period in periods if current is None or period.start < current.start)[:PERIODS]
    shown = ([current] if current else []) + list(past)
    return UsageSummary(subscription, prices, current, past, _charts(prices, shown[::-1]))


def _periods(subscription: Subscription, prices: tuple[MeteredPrice, ...]) -> list[PeriodUsage]:
    rows = db.session.execute(
        select(UsageRecord.period_start, UsageRecord.period_end, UsageRecord.metric, func.sum(UsageRecord.quantity),
               func.count(UsageRecord.billed_at))
        .where(UsageRecord.subscription_id == subscription.id)
        .group_by(UsageRecord.period_start, UsageRecord.period_end, UsageRecord.metric)
    ).all()
    billed_minor = dict(db.session.execute(
        select(Charge.period_start, func.sum(Charge.amount_minor))
        .where(Charge.subscription_id == subscription.id, Charge.kind == ChargeKind.USAGE)
        .group_by(Charge.period_start)
    ).all())
    sums: dict[tuple[datetime, datetime], dict[str, int]] = {}
    billed: dict[tuple[datetime, datetime], bool] = {}
    for start, end, metric, units, billed_count in rows:
        sums.setdefault((start, end), {})[metric] = int(units)
        billed[(start, end)] = billed.get((start, end), False) or billed_count > 0
    return [PeriodUsage(start, end, lines(prices, sums[(start, end)]), billed[(start, end)],
                        int(billed_minor.get(start, 0)))
            for start, end in sorted(sums, reverse=True)]


def _current(subscription: Subscription, prices: tuple[MeteredPrice, ...], periods: list[PeriodUsage]
             ) -> PeriodUsage | None:
    if subscription.status not in TAKES_USAGE or subscription.activated_at is None:
        return None
    start, end = record_period(subscription.activated_at, subscription.interval, now())
    found = next((period for period in periods if period.start == start), None)
    return found or PeriodUsage(start, end, lines(prices, {}), False, 0)


def _charts(prices: tuple[MeteredPrice, ...], periods: list[PeriodUsage]) -> tuple[BarChart, ...]:
    charts = []
    for index, price in enumerate(prices):
        points = [(f"{period.start:%-d %b}", period.lines[index].quantity) for period in periods]
        charts.append(bar_chart(f"{price.label} per billing period ({price.unit})", points,
                                lambda value, unit=price.unit: f"{value:,} {unit}"))
    return tuple(charts)


def metered_plans(tenant: TenantLike) -> list[tuple[Plan, tuple[MeteredPrice, ...]]]:
    """The tenant's plans that meter usage, with their metered prices (for the upload page's metric names)."""
    found = []
    for plan in db.session.scalars(select(Plan).where(Plan.tenant_id == tenant.id).order_by(Plan.sort_order,
                                                                                             Plan.id)):
        try:
            prices = metered_prices(plan.usage_prices)
        except UsageError:
            continue
        if prices:
            found.append((plan, prices))
    return found
