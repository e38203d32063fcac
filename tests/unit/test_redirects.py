import pytest

from app.web.redirects import safe_next


@pytest.mark.parametrize("target", ["/", "/admin/", "/support/?q=a&page=2", "/a/b#frag"])
def test_local_paths_are_kept(target):
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [None, "", "admin", "//evil.example", "/\\evil.example", "https://evil.example/", "javascript:alert(1)",
     "/ok\r\nLocation: https://evil.example", "/\x00", "\\\\evil.example"],
)
def test_anything_else_is_dropped(target):
    assert safe_next(target) is None
