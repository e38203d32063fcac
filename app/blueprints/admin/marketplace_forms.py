"""The forms of the tenant admin's marketplace pages: they check shape; app/services/marketplace_connections.py
checks the rules."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, PasswordField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, Optional

from app.blueprints.admin.forms import strip
from app.domain.marketplaces import ExternalState, Marketplace


class MicrosoftForm(FlaskForm):
    entra_tenant_id = StringField("Entra tenant id", filters=[strip], validators=[Length(max=100)],
                                  description="Directory (tenant) id of the Microsoft Entra tenant where the portal's "
                                              "app is registered (the one named on the offer's Technical "
                                              "configuration).", render_kw={"autocomplete": "off"})
    client_id = StringField("App client id", filters=[strip], validators=[Length(max=100)],
                            description="The app registration's Application (client) id.",
                            render_kw={"autocomplete": "off"})
    client_secret = PasswordField("Client secret", validators=[Optional(), Length(max=500)],
                                  description="The secret's value (Certificates & secrets), stored encrypted and never "
                                              "shown again. Leave empty to keep the stored one.",
                                  render_kw={"autocomplete": "off"})
    secret_expires_on = DateField("Client secret expires on", validators=[Optional()],
                                  description="Shown beside the secret in Microsoft Entra. You are warned 30 days "
                                              "before, and once it has expired.")
    offer_ids = StringField("Offer ids (optional)", filters=[strip], validators=[Optional(), Length(max=2000)],
                            description="Your SaaS offers' ids, separated by commas.",
                            render_kw={"autocomplete": "off"})


class StackitForm(FlaskForm):
    project_id = StringField("Vendor project id", filters=[strip], validators=[Length(max=100)],
                             description="The STACKIT project your products are registered in.",
                             render_kw={"autocomplete": "off"})
    service_account_key = TextAreaField("Service-account key", validators=[Optional(), Length(max=20_000)],
                                        description="The key file (JSON) of a service account with access to the "
                                                    "marketplace's vendor API, stored encrypted and never shown "
                                                    "again. Leave empty to keep the stored one.",
                                        render_kw={"rows": 4, "autocomplete": "off", "spellcheck": "false"})


MARKETPLACE_CHOICES = [SelectChoice(m.value, m.label) for m in Marketplace]


class MappingForm(FlaskForm):
    marketplace = SelectField("Marketplace", choices=MARKETPLACE_CHOICES, validators=[InputRequired()])
    offer_id = StringField("Offer or product id", filters=[strip], validators=[Length(max=100)],
                           description="Microsoft: the offer id. STACKIT: the product id (vendorProductId).",
                           render_kw={"autocomplete": "off"})
    external_plan_id = StringField("External plan id", filters=[strip], validators=[Length(max=100)],
                                   description="Microsoft: the plan id. STACKIT: the plan id (vendorPlanId).",
                                   render_kw={"autocomplete": "off"})
    plan_id = SelectField("Portal plan", coerce=str, validators=[Optional()], choices=[])


class MappingChangeForm(FlaskForm):
    plan_id = SelectField("Portal plan", coerce=str, validators=[Optional()], choices=[])


class RelinkForm(FlaskForm):
    subscription_id = IntegerField("Portal subscription", validators=[InputRequired("Choose the subscription.")])


class ExternalFilterForm(FlaskForm):
    """The marketplace subscriptions' filters, from the query string; a value that is no choice is ignored."""

    class Meta:
        csrf = False

    marketplace = SelectField("Marketplace", validators=[Optional()],
                              choices=[SelectChoice("", "Any marketplace"), *MARKETPLACE_CHOICES])
    state = SelectField("State", validators=[Optional()],
                        choices=[SelectChoice("", "Any state"),
                                 *(SelectChoice(s.value, s.label) for s in ExternalState)])

    def chosen(self) -> tuple[Marketplace | None, ExternalState | None]:
        self.validate()
        marketplace = Marketplace(self.marketplace.data) if self.marketplace.data and not self.marketplace.errors \
            else None
        state = ExternalState(self.state.data) if self.state.data and not self.state.errors else None
        return marketplace, state

    def params(self) -> dict[str, str]:
        marketplace, state = self.chosen()
        return {key: value.value for key, value in (("marketplace", marketplace), ("state", state)) if value}


class OperationFilterForm(FlaskForm):
    """The operations log's filters: marketplace, and ok or failed."""

    class Meta:
        csrf = False

    marketplace = SelectField("Marketplace", validators=[Optional()],
                              choices=[SelectChoice("", "Any marketplace"), *MARKETPLACE_CHOICES])
    outcome = SelectField("Outcome", validators=[Optional()],
                          choices=[SelectChoice("", "Ok and failed"), SelectChoice("ok", "Ok"),
                                   SelectChoice("failed", "Failed")])

    def chosen(self) -> tuple[Marketplace | None, bool | None]:
        self.validate()
        marketplace = Marketplace(self.marketplace.data) if self.marketplace.data and not self.marketplace.errors \
            else None
        ok = {"ok": True, "failed": False}.get(self.outcome.data or "") if not self.outcome.errors else None
        return marketplace, ok

    def params(self) -> dict[str, str]:
        marketplace, ok = self.chosen()
        return {key: value for key, value in (("marketplace", marketplace and marketplace.value),
                                              ("outcome", None if ok is None else "ok" if ok else "failed")) if value}
