"""cloud-init user data: the admin's template rendered in a sandbox, the customer's keys merged in."""

import email

import pytest
import yaml

from app.domain.cloud_init import MAX_USER_DATA_BYTES, UserDataError, render_user_data


def test_the_template_gets_the_servers_names():
    text = render_user_data("#cloud-config\nhostname: {{ hostname }}\nfqdn: {{ fqdn }}\n", hostname="web-1",
                            fqdn="web-1.example.test")
    assert text == "#cloud-config\nhostname: web-1\nfqdn: web-1.example.test\n"


def test_an_unknown_variable_is_an_error_not_an_empty_string():
    with pytest.raises(UserDataError, match="broken"):
        render_user_data("hostname: {{ nme }}", hostname="x")


def test_templates_cannot_reach_python_internals():
    with pytest.raises(UserDataError):
        render_user_data("{{ hostname.__class__.__mro__[1].__subclasses__() }}", hostname="x")


def test_the_size_limit_is_checked_on_the_rendered_text():
    render_user_data("x" * MAX_USER_DATA_BYTES)
    with pytest.raises(UserDataError, match="at most"):
        render_user_data("{{ hostname * 40000 }}", hostname="é")



# --- SSH keys merged into the admin's template --------------------------------------------------------------------

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyA casey@laptop"
KEY_B = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQKeyB casey@old: 'quoted' # not a comment"


def parsed(user_data: str) -> dict:
    assert user_data.startswith("#cloud-config\n")
    return yaml.safe_load(user_data)


def test_keys_are_added_to_a_cloud_config_template_as_valid_yaml():
    text = render_user_data("#cloud-config\n# the admin's comment\nhostname: {{ hostname }}\npackages: [nginx]\n",
                            hostname="web", ssh_keys=[KEY_A, KEY_B])
    assert parsed(text) == {"ssh_pwauth": False, "hostname": "web", "packages": ["nginx"],
                            "ssh_authorized_keys": [KEY_A, KEY_B]}


def test_keys_join_those_the_template_has_without_duplicates():
    template = f"#cloud-config\nssh_authorized_keys:\n  - {KEY_A}\nusers:\n  - default\n"
    text = render_user_data(template, ssh_keys=[KEY_A, KEY_B])
    assert parsed(text) == {"ssh_pwauth": False, "ssh_authorized_keys": [KEY_A, KEY_B], "users": ["default"]}


@pytest.mark.parametrize("template", ["", "   \n", "#cloud-config\n", "#cloud-config\n# nothing yet\n"])
def test_an_empty_template_becomes_a_cloud_config_with_the_keys(template):
    assert parsed(render_user_data(template, ssh_keys=[KEY_A])) == {"ssh_pwauth": False, "ssh_authorized_keys": [KEY_A]}


def test_with_keys_ssh_takes_no_password_unless_the_template_says_so():
    """A password the cloud sets (DigitalOcean emails one to the operator's account) cannot open the server."""
    assert parsed(render_user_data("#cloud-config\nssh_pwauth: true\n", ssh_keys=[KEY_A]))["ssh_pwauth"] is True
    script = email.message_from_string(render_user_data("#!/bin/sh\ntrue\n", ssh_keys=[KEY_A]))
    assert parsed(script.get_payload()[1].get_payload(decode=True).decode())["ssh_pwauth"] is False


def test_without_keys_the_template_is_left_as_written():
    template = "#cloud-config\n# the admin's comment\nruncmd: ['echo {{ hostname }}']\n"
    assert render_user_data(template, hostname="x") == "#cloud-config\n# the admin's comment\nruncmd: ['echo x']\n"


def test_a_shell_script_becomes_multipart_with_a_cloud_config_part_for_the_keys():
    text = render_user_data("#!/bin/sh\necho {{ hostname }} > /etc/motd\n", hostname="web", ssh_keys=[KEY_A])
    message = email.message_from_string(text)
    assert message.is_multipart()
    script, keys = message.get_payload()
    assert script.get_content_type() == "text/x-shellscript"
    assert script.get_payload(decode=True).decode() == "#!/bin/sh\necho web > /etc/motd\n"
    assert keys.get_content_type() == "text/cloud-config"
    document = parsed(keys.get_payload(decode=True).decode())
    assert document["ssh_authorized_keys"] == [KEY_A] and "list(append)" in document["merge_how"]


def test_a_multipart_template_gets_one_more_part():
    first = render_user_data("#!/bin/sh\ntrue\n", ssh_keys=[KEY_A])
    message = email.message_from_string(render_user_data(first, ssh_keys=[KEY_B]))
    assert [part.get_content_type() for part in message.get_payload()] == [
        "text/x-shellscript", "text/cloud-config", "text/cloud-config"]


@pytest.mark.parametrize(("template", "message"), [
    ("#cloud-config\nhostname: [unclosed\n", "not valid YAML"),
    ("#cloud-config\n- a list\n", "must be a YAML mapping"),
    ("#cloud-config\nssh_authorized_keys: one-key\n", "not a list of keys"),
    ("hostname: web\n", "not something cloud-init reads"),
])
def test_a_template_keys_cannot_be_added_to_is_explained(template, message):
    with pytest.raises(UserDataError, match=message):
        render_user_data(template, ssh_keys=[KEY_A])


def test_keys_count_towards_the_size_limit():
    template = "#cloud-config\nwrite_files:\n  - content: " + "x" * (MAX_USER_DATA_BYTES - 200) + "\n"
    render_user_data(template)
    with pytest.raises(UserDataError, match="at most"):
        render_user_data(template, ssh_keys=[KEY_A, KEY_B])
