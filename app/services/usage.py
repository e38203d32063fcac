"""Metered usage: recording it (one record, or a CSV upload all or nothing) and billing closed periods.

A record belongs to the subscription's billing period that contains its time (`app.domain.usage`); it is
refused once that period has closed (ended, or before the subscription's current period), so a period's
usage is final when the billing run bills it. Recording locks the subscription row, as billing does, so the
two never interleave for one subscription.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import func

from app.clock import now
from app.domain.accounts import Role
from app.domain.billing import ChargeKind, UsageSource
from app.domain.policy import ActorKind
from app.domain.usage import (
    TAKES_USAGE,
    CsvRow,
    MeteredPrice,
    UsageError,
    UsageLine,
    check_record,
    metered_prices,
    open_from,
    parse_csv,
    record_period,
)
from app.extensions import db
from app.models import Charge, Subscription, TenantLike, UsageRecord
from app.services.actors import Actor
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

log = logging.getLogger(__name__)

# Who records usage: the provider's side (a tenant admin, the portal's jobs, a marketplace), never a customer,
# whose own usage it is.
RECORDERS = (ActorKind.TENANT_ADMIN, ActorKind.SYSTEM, ActorKind.MARKETPLACE)
BATCH = 200  # subscriptions billed per transaction


def record(*, tenant: TenantLike, actor: Actor, subscription_id: int, metric: str, quantity: int,
           recorded_at: datetime, idempotency_key: str, source: UsageSource) -> UsageRecord:
    """Record `quantity` units of `metric` used at `recorded_at` by the tenant's subscription, and commit.

    The same key with the same values returns the record made the first time; with other values it is
    refused (Conflict). Refusals: NotFound (not the tenant's subscription), Forbidden (the actor may not
    record usage), InvalidInput (the rules of app.domain.usage, or a subscription that takes no usage).
    """
    _may_record(actor)
    try:
        subscription = _lock(tenant, subscription_id)
        row = _record(subscription, actor=actor, metric=metric, quantity=quantity, recorded_at=recorded_at,
                      key=idempotency_key, source=source)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return row


@dataclass
class ImportOutcome:
    """What an upload did: `recorded` new records and `already` ones sent before, or only `problems`."""

    recorded: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def import_csv(*, tenant: TenantLike, actor: Actor, text: str) -> ImportOutcome:
    """Record every row of a CSV upload in one transaction, or none: any bad row and nothing is recorded,
    every problem is listed by its line number. Rows whose key was recorded before count as `already`."""
    _may_record(actor)
    rows, problems = parse_csv(text)
    outcome = ImportOutcome(problems=problems)  # with problems, the good rows are still checked, not inserted
    try:
        subscriptions = _lock_all(tenant, {row.subscription_id for row in rows})
        made = [_csv_row(row, subscriptions, actor, outcome) for row in rows]
    except Exception:
        db.session.rollback()
        raise
    if outcome.problems:
        db.session.rollback()
        return ImportOutcome(problems=sorted(outcome.problems, key=_line_of))
    db.session.commit()
    outcome.recorded = sum(1 for fresh in made if fresh)
    outcome.already = len(made) - outcome.recorded
    return outcome


def _line_of(problem: str) -> int:
    number = problem.removeprefix("Line ").partition(":")[0]
    return int(number) if number.isdigit() else 0


def _csv_row(row: CsvRow, subscriptions: dict[int, Subscription], actor: Actor, outcome: ImportOutcome) -> bool:
    """Record one row (True if new); a refusal becomes a problem of the outcome."""
    subscription = subscriptions.get(row.subscription_id)
    if subscription is None:
        outcome.problems.append(f"Line {row.line}: there is no subscription {row.subscription_id}.")
        return False
    try:
        if outcome.problems:  # nothing more is inserted, but every row is still checked
            _check(subscription, metric=row.metric, quantity=row.quantity, recorded_at=row.recorded_at)
            return False
        created = _record(subscription, actor=actor, metric=row.metric, quantity=row.quantity,
                          recorded_at=row.recorded_at, key=row.idempotency_key, source=UsageSource.CSV,
                          fresh=True)
    except (InvalidInput, Conflict) as error:
        outcome.problems.append(f"Line {row.line}: {error.message}")
        return False
    return bool(created)


def _may_record(actor: Actor) -> None:
    admins_token = actor.kind is ActorKind.API_TOKEN and actor.user is not None \
        and actor.user.role == Role.TENANT_ADMIN
    if actor.kind not in RECORDERS and not admins_token:
        raise Forbidden("Only the provider records usage.")


def _lock(tenant: TenantLike, subscription_id: int) -> Subscription:
    subscription = db.session.scalar(
        select(Subscription).where(Subscription.id == subscription_id, Subscription.tenant_id == tenant.id)
        .with_for_update()
    )
    if subscription is None:
        raise NotFound("There is no such subscription.")
    return subscription


def _lock_all(tenant: TenantLike, ids: set[int]) -> dict[int, Subscription]:
    rows = db.session.scalars(
        select(Subscription).where(Subscription.id.in_(sorted(ids)), Subscription.tenant_id == tenant.id)
        .order_by(Subscription.id).with_for_update()
    )
    return {row.id: row for row in rows}


def _record(subscription: Subscription, *, actor: Actor, metric: str, quantity: int, recorded_at: datetime,
            key: str, source: UsageSource, fresh: bool = False) -> UsageRecord | bool:
    """Insert one record of a locked subscription under its unique key (the caller commits).

    Returns the record; with `fresh`, True for a new record and False for a replay of an earlier one.
    """
    values = {"metric": metric, "quantity": quantity, "recorded_at": recorded_at}
    if not isinstance(key, str) or not 0 < len(key) <= 100:
        raise InvalidInput("The idempotency key must be 1 to 100 characters.")
    try:
        start, end = _check(subscription, **values)
    except InvalidInput:
        earlier = _same(subscription, key, values)  # a replay of a record whose period has closed since
        if earlier is None:
            raise
        return False if fresh else earlier
    row = UsageRecord(tenant_id=subscription.tenant_id, subscription_id=subscription.id, idempotency_key=key,
                      source=source, period_start=start, period_end=end, created_at=now(),
                      created_by_id=actor.user_id, **values)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:  # the key was used before: the same usage again, or a mistake
        earlier = _same(subscription, key, values)
        if earlier is None:
            raise Conflict(f"The key {key!r} was already used for other usage of this subscription.") from None
        return False if fresh else earlier
    return True if fresh else row


def _check(subscription: Subscription, *, metric: str, quantity: int, recorded_at: datetime
           ) -> tuple[datetime, datetime]:
    """The record's period when the rules take it; else InvalidInput with the reason."""
    anchor, start = subscription.activated_at, subscription.current_period_start
    if subscription.status not in TAKES_USAGE or anchor is None or start is None:
        raise InvalidInput("This subscription takes no usage: it is not running.")
    moment = now()
    try:
        prices = metered_prices(subscription.plan.usage_prices)
        check_record(prices, metric=metric, quantity=quantity, recorded_at=recorded_at, now=moment,
                     open_since=open_from(anchor, subscription.interval, start, moment))
    except UsageError as error:
        raise InvalidInput(error.message) from None
    period = record_period(anchor, subscription.interval, recorded_at)
    if _billed(subscription.id, period[0]):
        raise InvalidInput("The billing period of this usage has been billed already.")
    return period


def _billed(subscription_id: int, period_start: datetime) -> bool:
    return db.session.scalar(
        select(UsageRecord.id).where(UsageRecord.subscription_id == subscription_id,
                                     UsageRecord.period_start == period_start,
                                     UsageRecord.billed_at.is_not(None)).limit(1)
    ) is not None


def _same(subscription: Subscription, key: str, values: dict[str, object]) -> UsageRecord | None:
    """The record made earlier with `key`, if it has the same values."""
    earlier = db.session.scalar(select(UsageRecord).where(UsageRecord.subscription_id == subscription.id,
                                                          UsageRecord.idempotency_key == key))
    if earlier is None:
        return None
    same = (earlier.metric, earlier.quantity, earlier.recorded_at) == (
        values["metric"], values["quantity"], values["recorded_at"])
    if not same:
        raise Conflict(f"The key {key!r} was already used for other usage of this subscription.")
    return earlier


# --- the billing run's step ------------------------------------------------------------------------------------

def bill_closed_periods(as_of: datetime, *, user_id: int | None = None) -> str:
    """The billing run's first step: the usage of each period that has ended by `as_of` becomes charges.

    One charge per subscription, metric and period (kind usage, the billable units, the unit price), under
    the charges' unique constraint, so a rerun creates nothing twice; the period's records are marked
    billed in the same transaction. It reads only records not billed yet whose period has ended: the partial
    index ix_usage_records_unbilled (period_end WHERE billed_at IS NULL) serves that, so the cost grows with
    the usage due, not with all usage. Subscriptions are billed in batches, locked (recording waits), each
    batch committed. Lines that cost nothing (all units included) make no charge.
    """
    due = select(UsageRecord.subscription_id).where(UsageRecord.billed_at.is_(None),
                                                    UsageRecord.period_end <= as_of).distinct()
    if user_id is not None:
        due = due.join(Subscription, Subscription.id == UsageRecord.subscription_id).where(
            Subscription.user_id == user_id)
    ids = sorted(db.session.scalars(due))
    if not ids:
        return "no usage due"
    made = 0
    for offset in range(0, len(ids), BATCH):
        made += _bill_batch(ids[offset:offset + BATCH], as_of)
    return f"{made} usage charges from {len(ids)} subscriptions"


def _bill_batch(ids: list[int], as_of: datetime) -> int:
    try:
        subscriptions = {row.id: row for row in db.session.scalars(
            select(Subscription).where(Subscription.id.in_(ids)).order_by(Subscription.id).with_for_update())}
        sums = db.session.execute(
            select(UsageRecord.subscription_id, UsageRecord.metric, UsageRecord.period_start, UsageRecord.period_end,
                   func.sum(UsageRecord.quantity))
            .where(UsageRecord.subscription_id.in_(ids), UsageRecord.billed_at.is_(None),
                   UsageRecord.period_end <= as_of)
            .group_by(UsageRecord.subscription_id, UsageRecord.metric, UsageRecord.period_start,
                      UsageRecord.period_end)
        ).all()
        charges = [charge for sub_id, metric, start, end, units in sums
                   if (charge := _charge_row(subscriptions[sub_id], metric, start, end, int(units))) is not None]
        made = _insert_charges(charges)
        db.session.execute(update(UsageRecord).where(UsageRecord.subscription_id.in_(ids),
                                                     UsageRecord.billed_at.is_(None),
                                                     UsageRecord.period_end <= as_of)
                           .values(billed_at=now()).execution_options(synchronize_session=False))
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return made


def _charge_row(subscription: Subscription, metric: str, start: datetime, end: datetime, units: int
                ) -> dict[str, object] | None:
    if subscription.marketplace is not None:
        return None  # the marketplace bills it (its records are marked billed all the same: nothing is due here)
    try:
        prices = {price.metric: price for price in metered_prices(subscription.plan.usage_prices)}
    except UsageError as error:
        log.error("subscription %s: the plan's metered prices are invalid: %s", subscription.id, error.message)
        prices = {}
    price = prices.get(metric)
    if price is None:
        log.warning("subscription %s: usage of %s has no price on the plan; not billed", subscription.id, metric)
        return None
    line = UsageLine(price, units)
    if line.amount_minor == 0:
        return None
    return {
        "tenant_id": subscription.tenant_id, "subscription_id": subscription.id, "user_id": subscription.user_id,
        "kind": ChargeKind.USAGE, "description": describe(line, start, end)[:200], "usage_metric": metric,
        "quantity": line.billable, "unit_amount_minor": price.unit_price_minor, "amount_minor": line.amount_minor,
        "currency": subscription.currency, "period_start": start, "period_end": end, "created_at": now(),
    }


def describe(line: UsageLine, start: datetime, end: datetime) -> str:
    """`Outgoing traffic, 1 Nov 2026 to 1 Dec 2026: 1,250 GB (1,000 GB included)`."""
    price: MeteredPrice = line.price
    included = f" ({price.included:,} {price.unit} included)" if price.included else ""
    return f"{price.label}, {start:%-d %b %Y} to {end:%-d %b %Y}: {line.quantity:,} {price.unit}{included}"


def _insert_charges(rows: list[dict[str, object]]) -> int:
    """Insert the charges, skipping any that exist already (the unique constraint decides); how many were new."""
    if not rows:
        return 0
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(Charge).values(rows)
                 .on_conflict_do_nothing(index_elements=["subscription_id", "kind", "period_start", "usage_metric"])
                 .returning(Charge.id))
    return len(db.session.execute(statement).all())
