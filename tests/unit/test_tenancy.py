import pytest

from app.selectors.tenants import normalize_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [("Portal.Example.COM", "portal.example.com"), ("localhost:5000", "localhost"), ("[::1]:8080", "[::1]"),
     (" example.com ", "example.com")],
)
def test_hosts_are_normalized(host, expected):
    assert normalize_host(host) == expected
