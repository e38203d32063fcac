import pytest

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
