"""/api/docs: the API reference page loads, its script and stylesheets are the portal's own files (none from a
CDN), and it carries the portal's Content-Security-Policy unchanged."""

from __future__ import annotations

import re

from app.web.security import CONTENT_SECURITY_POLICY


def test_api_reference_page_serves_local_assets_under_the_portal_csp(client, tenant) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    html = response.get_data(as_text=True)
    assert "<script>" not in html and "style=" not in html
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert any(a.endswith("/swagger-ui-bundle.js") for a in assets)
    assert any(a.endswith("/swagger-ui.css") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert served.content_length and served.content_length > 100
        served.close()
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_account_tokens_page_links_the_reference(client, auth, tenant, customer) -> None:  # type: ignore[no-untyped-def]
    auth.login(customer.email)
    assert 'href="/api/docs"' in client.get("/account/tokens").get_data(as_text=True)
