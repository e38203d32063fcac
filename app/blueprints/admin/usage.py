"""The tenant admin's usage upload: a CSV of usage records, recorded all or nothing."""

from __future__ import annotations

from flask import Response, g, render_template

from app.blueprints.admin import bp
from app.blueprints.admin.forms import UsageUploadForm
from app.domain.usage import EXAMPLE_CSV
from app.selectors import usage as selectors
from app.services import usage
from app.services.errors import ServiceError
from app.services.usage import ImportOutcome
from app.web.access import current_actor, tenant_admin_required


@bp.route("/usage", methods=["GET", "POST"], endpoint="usage_upload")
@tenant_admin_required
def usage_upload() -> tuple[str, int]:
    form = UsageUploadForm()
    if not form.validate_on_submit():
        return _page(form, status=400 if form.is_submitted() else 200)
    text = _text(form.file.data.read())
    if text is None:
        form.file.errors = ["This is not a UTF-8 text file. Save the sheet as CSV (UTF-8) and upload it again."]
        return _page(form, status=400)
    try:
        outcome = usage.import_csv(tenant=g.tenant, actor=current_actor(), text=text)
    except ServiceError as error:
        outcome = ImportOutcome(problems=[error.message])
    return _page(UsageUploadForm(formdata=None), outcome=outcome, status=200 if outcome.ok else 400)


@bp.get("/usage/example.csv", endpoint="usage_example")
@tenant_admin_required
def usage_example() -> Response:
    return Response(EXAMPLE_CSV, mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="usage-example.csv"'})


def _text(data: bytes) -> str | None:
    """The upload as text: UTF-8 (with or without a byte order mark), nothing binary."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _page(form: UsageUploadForm, *, outcome: ImportOutcome | None = None, status: int = 200) -> tuple[str, int]:
    return render_template("admin/usage.html", form=form, outcome=outcome,
                           plans=selectors.metered_plans(g.tenant)), status
