"""Jinja filters: money in minor units, dates, labels."""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from flask import Flask
from markupsafe import Markup, escape

from app.domain.catalogue import Interval
from app.domain.countries import country_name
from app.domain.geography import location_label
from app.domain.pricing import Money
from app.domain.subscriptions import ItemStatus, SubscriptionStatus


@lru_cache(maxsize=4096, typed=True)
def money(amount: int, currency: str) -> str:
    """€12.50 for (1250, "EUR"); kept, because a page shows the same few prices many times."""
    return Money(amount, currency).format()


def per_interval(interval: Interval | str) -> str:
    return {"month": "per month", "year": "per year"}[str(interval)]


def date(value: datetime | None) -> str:
    return value.strftime("%-d %b %Y") if value else "—"


def datetime_utc(value: datetime | None) -> str:
    return value.strftime("%-d %b %Y, %H:%M UTC") if value else "—"


def humanize(value: object) -> str:
    """`pending_cancel` -> `Pending cancel`."""
    return str(value).replace("_", " ").capitalize()


def status_label(value: object) -> str:
    """A subscription or item status as the customer sees it elsewhere (`pending_fulfillment` -> Setting up)."""
    for enum in (SubscriptionStatus, ItemStatus):
        try:
            return enum(str(value)).label
        except ValueError:
            continue
    return humanize(value)


_BUSY_POWER = {"starting": "Starting…", "stopping": "Stopping…", "rebooting": "Restarting…",
               "provisioning": "Setting up…"}
# The clouds name their actions differently (Hetzner `poweroff`, DigitalOcean `power_off`, ...).
_ACTION_PHRASES = {"poweron": "Starting…", "power_on": "Starting…", "poweroff": "Stopping…", "power_off": "Stopping…",
                   "shutdown": "Stopping…", "reboot": "Restarting…", "reset": "Restarting…",
                   "power_cycle": "Restarting…", "rebuild_server": "Rebuilding…", "rebuild": "Rebuilding…",
                   "reset_password": "Setting a new root password…"}
_REBUILDS = frozenset({"rebuild_server", "rebuild"})


def power_label(info: Any) -> str:
    """What a server is doing, in plain words: `Running`, `Off`, `Stopping…` while an action runs."""
    power = str(info.power)
    action = info.action
    running = action is not None and str(action.status) == "running"
    if running and str(action.command) in _REBUILDS:
        return f"Rebuilding… {action.progress} %" if action.progress else "Rebuilding…"
    if power in _BUSY_POWER:
        return _BUSY_POWER[power]
    if running:
        return _ACTION_PHRASES.get(str(action.command), "Working…")
    return humanize(power)


def tax_rate(basis_points: int) -> str:
    """1900 -> "19 %", 550 -> "5.5 %", 0 -> "0 %"."""
    return f"{basis_points / 100:g} %"


def party_lines(snapshot: dict[str, Any] | None) -> list[str]:
    """A seller or bill-to snapshot of an invoice as the lines of an address block: name, company, address lines,
    postal code and city, country, VAT id. Tolerant of the address as one text or a list of lines, and of keys left
    out."""
    snapshot = snapshot or {}
    address = snapshot.get("address_lines") or snapshot.get("address") or []
    lines = address.splitlines() if isinstance(address, str) else [str(line) for line in address]
    country = str(snapshot.get("country") or "")
    vat_id = snapshot.get("vat_id")
    town = " ".join(str(snapshot.get(key) or "").strip() for key in ("postal_code", "city"))
    out = [str(snapshot.get("name") or ""), str(snapshot.get("company") or ""), *lines, town,
           country_name(country) if len(country) == 2 else country, f"VAT ID {vat_id}" if vat_id else ""]
    return [line.strip() for line in out if line and line.strip()]


def invoice_totals(invoice: Any) -> list[tuple[str, int]]:
    """The totals under an invoice's lines, as the page and the PDF show them: net, tax, total, then what was taken
    off (balance applied, credited, paid; left out when zero, shown negative) and the amount due."""
    taken_off = [("Customer balance applied", -invoice.balance_applied_minor), ("Credited", -invoice.credited_minor),
                 ("Paid", -invoice.amount_paid_minor)]
    return [("Net", invoice.subtotal_minor), (f"Tax ({tax_rate(invoice.tax_rate_bp)})", invoice.tax_minor),
            ("Total", invoice.total_minor), *[(label, amount) for label, amount in taken_off if amount],
            ("Amount due", invoice.amount_due_minor)]


_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]")


_LINK = Markup('<a href="{url}" rel="noopener noreferrer">{url}</a>')


def linkify(text: str | None) -> Markup:
    """Plain text, escaped, with its http(s) addresses as links (an email's text body)."""
    text, parts, start = text or "", [], 0
    for match in _URL.finditer(text):
        parts += [escape(text[start:match.start()]), _LINK.format(url=match.group(0))]  # format escapes the url
        start = match.end()
    return Markup("").join([*parts, escape(text[start:])])


def init_app(app: Flask) -> None:
    app.add_template_filter(linkify)
    app.add_template_filter(power_label)
    app.add_template_filter(country_name, "country")
    app.add_template_filter(status_label)
    app.add_template_filter(location_label, "location")
    app.add_template_filter(money)
    app.add_template_filter(per_interval)
    app.add_template_filter(date)
    app.add_template_filter(datetime_utc)
    app.add_template_filter(humanize)
    app.add_template_filter(tax_rate)
    app.add_template_filter(party_lines)
    app.add_template_filter(invoice_totals)
