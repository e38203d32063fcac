"""Server names: DNS labels, numbered for several servers, under the tenant's domain; readable suggestions."""

import random

import pytest

from app.domain import server_names


@pytest.mark.parametrize(("name", "problem"), [
    ("web", None), ("a", None), ("web-01", None), ("x" * 63, None), ("", "Give your server a name."),
    ("x" * 64, "Use at most 63 characters."), ("-web", "A name cannot start or end with a hyphen."),
    ("web-", "A name cannot start or end with a hyphen."), ("my web", "Use lowercase letters, digits and hyphens"),
    ("web.example", "Use lowercase letters, digits and hyphens"), ("web_1", "Use lowercase letters"),
    ("wéb", "Use lowercase letters"),
])
def test_server_names_are_dns_labels(name, problem):
    found = server_names.name_problem(name)
    assert found == problem if problem is None else problem in found


def test_names_are_normalized_before_they_are_checked():
    assert server_names.normalize("  Web-01 ") == "web-01"


def test_several_servers_are_numbered_and_must_all_fit():
    assert server_names.names("web", 3) == ["web", "web-2", "web-3"]
    assert server_names.names("web", 1) == ["web"]
    assert server_names.name_problem("x" * 61, 2) is None
    assert "the last of your 10 servers is called" in server_names.name_problem("x" * 61, 10)


def test_the_fqdn_puts_the_name_under_the_tenant():
    assert server_names.fqdn("web", "acme", "cloud.example.com") == "web.acme.cloud.example.com"
    assert server_names.fqdn("web", "acme", "cloud.example.com.") == "web.acme.cloud.example.com"
    assert "longer than DNS allows" in server_names.name_problem("web", domain="d" * 250)


def test_suggested_names_are_readable_valid_names():
    rng = random.Random(7)
    suggestions = {server_names.suggest(rng) for _ in range(200)}
    assert len(suggestions) > 150
    for name in suggestions:
        adjective, noun, number = name.split("-")
        assert server_names.name_problem(name) is None
        assert adjective in server_names.ADJECTIVES and noun in server_names.NOUNS and 10 <= int(number) <= 99
