"""cloud-init `user_data` from a service type's template, rendered in a sandbox and size-checked."""

from __future__ import annotations

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

MAX_USER_DATA_BYTES = 32 * 1024  # Hetzner's limit, the smaller of the two clouds'

_environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class UserDataError(ValueError):
    """The template cannot give valid user_data; the message says why, for the staff who wrote it."""


def render_user_data(template: str, **values: object) -> str:
    """Render `template` with `values` (hostname, fqdn, ...). Admins write templates, so it runs sandboxed."""
    try:
        rendered = _environment.from_string(template).render(**values)
    except TemplateError as error:
        raise UserDataError(f"The service type's cloud-init template is broken: {error}") from None
    size = len(rendered.encode())
    if size > MAX_USER_DATA_BYTES:
        raise UserDataError(f"The rendered cloud-init is {size} bytes; clouds accept at most {MAX_USER_DATA_BYTES}.")
    return rendered
