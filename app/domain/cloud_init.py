"""cloud-init `user_data` from a service type's template, rendered in a sandbox, with the customer's SSH keys
merged in, and size-checked.

The template is the tenant admin's; the keys are the customer's. The keys go to `ssh_authorized_keys`, which
cloud-init gives the image's default user (root on Hetzner's and DigitalOcean's images):

- a `#cloud-config` document (or no template at all) gets them added to its own `ssh_authorized_keys`, if it
  has any, and `ssh_pwauth: false` unless it sets that itself, and is written out again as YAML;
- anything else cloud-init reads (a shell script, `#include`, a boothook, ...) becomes a MIME multipart
  message of the admin's part and a `#cloud-config` part with the keys, which cloud-init merges by appending;
  an existing multipart message gets that part added.

The result must fit the clouds' limit (Hetzner's 32 KiB); otherwise, or when the template does not render
or is not valid YAML, `UserDataError` says why, for the staff who wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from email import message_from_string
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

MAX_USER_DATA_BYTES = 32 * 1024  # Hetzner's limit, the smaller of the two clouds'
CLOUD_CONFIG = "#cloud-config"
KEYS = "ssh_authorized_keys"
# With keys, SSH takes no passwords (unless the admin's template says otherwise): the password a cloud may set
# (and DigitalOcean emails to the operator's account) cannot open the server over the network.
PASSWORD_LOGIN = "ssh_pwauth"  # noqa: S105 (a cloud-init key)
# How cloud-init tells what a part is, by its first line (cloud-init's handlers, longest first).
_PART_TYPES = (("#cloud-config-archive", "cloud-config-archive"), ("#cloud-config-jsonp", "cloud-config-jsonp"),
               ("#cloud-boothook", "cloud-boothook"), ("#include-once", "x-include-once-url"),
               ("#include", "x-include-url"), ("#part-handler", "part-handler"), ("## template: jinja", "jinja2"),
               ("#!", "x-shellscript"))
# Our part's lists are added to the admin's, not put in their place.
_APPEND = "dict(recurse_array,no_replace)+list(append)"

_environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class UserDataError(ValueError):
    """The template cannot give valid user_data; the message says why, for the staff who wrote it."""


def render_user_data(template: str, *, ssh_keys: Sequence[str] = (), **values: object) -> str:
    """Render `template` with `values` (hostname, fqdn, ...) and add `ssh_keys` (public keys, one line each).
    Admins write templates, so it runs sandboxed."""
    try:
        rendered = _environment.from_string(template).render(**values)
    except TemplateError as error:
        raise UserDataError(f"The service type's cloud-init template is broken: {error}") from None
    if ssh_keys:
        rendered = with_ssh_keys(rendered, ssh_keys)
    size = len(rendered.encode())
    if size > MAX_USER_DATA_BYTES:
        raise UserDataError(f"The rendered cloud-init is {size} bytes; clouds accept at most {MAX_USER_DATA_BYTES}.")
    return rendered


def with_ssh_keys(user_data: str, ssh_keys: Sequence[str]) -> str:
    """`user_data` that also authorizes `ssh_keys` for the default user (see the module docstring)."""
    text = user_data.strip()
    first = text.split("\n", 1)[0].strip()
    if not text or first == CLOUD_CONFIG:
        document = _document(text)
        return _cloud_config({PASSWORD_LOGIN: False, **document, KEYS: _merged(document.get(KEYS), ssh_keys)})
    if first.lower().startswith("content-type:") or text.lower().startswith("mime-version:"):
        return _add_part(user_data, ssh_keys)
    subtype = next((kind for start, kind in _PART_TYPES if first.startswith(start)), None)
    if subtype is None:
        raise UserDataError("The service type's cloud-init template is not something cloud-init reads (it should "
                            "start with #cloud-config, #! or another cloud-init header), so SSH keys cannot be "
                            "added to it.")
    message = MIMEMultipart()
    message.attach(MIMEText(user_data, subtype))
    message.attach(_keys_part(ssh_keys))
    return message.as_string()


def _document(text: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text) if text else None
    except yaml.YAMLError as error:
        raise UserDataError(f"The service type's cloud-init template is not valid YAML: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UserDataError("The service type's cloud-init template must be a YAML mapping (key: value lines).")
    return document


def _merged(existing: object, ssh_keys: Sequence[str]) -> list[str]:
    if existing is None:
        existing = []
    if not isinstance(existing, list) or not all(isinstance(key, str) for key in existing):
        raise UserDataError(f"The service type's cloud-init template has `{KEYS}` that is not a list of keys.")
    return [*existing, *(key for key in ssh_keys if key not in existing)]


def _cloud_config(document: dict[str, Any]) -> str:
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 20)
    return f"{CLOUD_CONFIG}\n{body}"


def _keys_part(ssh_keys: Sequence[str]) -> MIMEText:
    return MIMEText(_cloud_config({KEYS: list(ssh_keys), PASSWORD_LOGIN: False, "merge_how": _APPEND}), "cloud-config")


def _add_part(user_data: str, ssh_keys: Sequence[str]) -> str:
    message = message_from_string(user_data.lstrip())
    if not message.is_multipart():
        raise UserDataError("The service type's cloud-init template is a MIME message that is not multipart, so "
                            "SSH keys cannot be added to it.")
    message.attach(_keys_part(ssh_keys))
    return message.as_string()
