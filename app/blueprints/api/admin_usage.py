"""/api/v1/admin/usage: a tenant admin uploads usage records, as a CSV body (the usage page's file) or as JSON
rows, recorded all or nothing by the same import as the page (app/services/usage.py): one bad row and nothing
is recorded, every problem named by its line (CSV) or row (JSON). Rows whose key was sent before count as
`already`, so a whole upload can be sent again safely.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import g, request
from marshmallow import Schema, fields, validate

from app.blueprints.api.base import actor, api_blueprint, idempotent
from app.blueprints.api.ids import OpaqueId
from app.blueprints.api.subscriptions import Input
from app.domain.usage import CSV_HEADER, EXAMPLE_CSV, MAX_ROWS
from app.services import usage
from app.services.usage import ImportOutcome
from app.web.api import problem

CSV = "text/csv"

blp = api_blueprint("admin_usage", __name__, url_prefix="/admin/usage", audience="admin", raw_bodies=frozenset({CSV}),
                    description="Tenant admins: upload metered usage, all or nothing.")


class UsageRowSchema(Input):
    subscriptionId = OpaqueId("sub", required=True)
    metric = fields.String(required=True, metadata={"example": "traffic_gb"})
    quantity = fields.Integer(required=True, metadata={"description": "whole units, 0 or more"})
    timestamp = fields.String(required=True, metadata={"description": "ISO 8601 with an offset",
                                                       "example": "2027-01-15T00:00:00Z"})
    idempotencyKey = fields.String(required=True, metadata={
        "description": "unique per subscription: a row sent again with it is not recorded twice"})


class UsageRowsSchema(Input):
    rows = fields.List(fields.Nested(UsageRowSchema), load_default=None,
                       validate=validate.Length(min=1, max=MAX_ROWS),
                       metadata={"description": f"the records (or send a {CSV} body, as the usage page's file)"})


class ImportSchema(Schema):
    recorded = fields.Integer(required=True, metadata={"description": "new records"})
    already = fields.Integer(required=True, metadata={"description": "rows whose key was recorded before"})


@blp.route("", methods=["POST"])
@idempotent
@blp.arguments(UsageRowsSchema)
@blp.response(200, ImportSchema)
@blp.alt_response(422, description="Nothing was recorded: `errors` names each bad line (CSV) or row (JSON)")
@blp.doc(
    parameters=[{"in": "header", "name": "Idempotency-Key", "required": True, "schema": {"type": "string"},
                 "description": "a new one per upload"}],
    requestBody={"content": {CSV: {"schema": {"type": "string"}, "example": EXAMPLE_CSV}}},
)
def upload(body: dict[str, Any]) -> Any:
    """Record usage: a CSV body (header `subscription_id,metric,quantity,timestamp,idempotency_key`, the page's
    subscription numbers) or JSON `rows` (opaque subscription ids). All or nothing."""
    if request.mimetype == CSV:
        data = request.get_data(cache=True)
        text = None if b"\x00" in data else _utf8(data)
        if text is None:
            return problem(422, "The body is not UTF-8 text.", errors={"body": ["Send the CSV as UTF-8 text."]})
        return _answer(usage.import_csv(tenant=g.tenant, actor=actor(), text=text), field=_line)
    if body["rows"] is None:
        return problem(422, f"Send JSON rows, or the CSV as {CSV}.", errors={"rows": ["Missing data for required "
                                                                                     "field."]})
    text, rows_at = _as_csv(body["rows"])
    return _answer(usage.import_csv(tenant=g.tenant, actor=actor(), text=text),
                   field=lambda line: f"rows.{rows_at[line]}" if line in rows_at else "rows")


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _as_csv(rows: list[dict[str, Any]]) -> tuple[str, dict[int, int]]:
    """The rows as the import's CSV, and which row starts on each line (a quoted value may span lines)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    rows_at: dict[int, int] = {}
    line = 2
    for index, row in enumerate(rows):
        rows_at[line] = index
        before = out.tell()
        writer.writerow([row["subscriptionId"], row["metric"], row["quantity"], row["timestamp"],
                         row["idempotencyKey"]])
        line += out.getvalue()[before:].count("\n")
    return out.getvalue(), rows_at


def _line(line: int) -> str:
    return f"line {line}" if line else "body"


def _answer(outcome: ImportOutcome, *, field: Any) -> Any:
    if outcome.ok:
        return {"recorded": outcome.recorded, "already": outcome.already}
    errors: dict[str, list[str]] = {}
    for message in outcome.problems:
        head, _, rest = message.partition(": ")
        number = head.removeprefix("Line ")
        line = int(number) if head.startswith("Line ") and number.isdigit() else 0
        errors.setdefault(field(line) if line else "body", []).append(rest if line else message)
    return problem(422, f"Nothing was recorded: {len(outcome.problems)} problem"
                        f"{'' if len(outcome.problems) == 1 else 's'}.", code="validation-failed", errors=errors,
                   problems=outcome.problems)
