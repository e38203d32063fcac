"""The sandbox cloud that ships with the portal: what the demo and the tests run on instead of real accounts.

- `hetzner_api`, `digitalocean_api`: local stand-ins for the clouds' HTTP APIs; the demo and the tests
  drive the real adapters and SDKs against these.
- `cloud`: the in-process `SandboxCloud`, for fast tests (no HTTP at all).
- `capacity`: the stock ledger both share.

The real adapters in `app.providers` never import this package (checked by import-linter).

Each fake is a small WSGI app with the cloud's paths, JSON shapes, errors and timing, plus a `/_control`
interface to change capacity and inject faults. `serve()` runs one on 127.0.0.1 in a background thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class FakeServer:
    """A fake API served on loopback; `url` is its root, e.g. http://127.0.0.1:40123."""

    server: BaseWSGIServer
    thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def shutdown(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


def serve(app: object, port: int = 0) -> FakeServer:
    """Serve `app` on 127.0.0.1:`port` (0 picks a free port) in a daemon thread."""
    server = make_server("127.0.0.1", port, app, threaded=True)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, name=f"fake-api-{server.server_port}", daemon=True)
    thread.start()
    return FakeServer(server, thread)


def start_sandbox_clouds(config: dict[str, object], *, hetzner_port: int = 0, digitalocean_port: int = 0,
                         stripe_port: int = 0, stackit_port: int = 0, microsoft_port: int = 0) -> list[FakeServer]:
    """Serve the fake APIs (demo state: one combination sold out each cloud; the fake Stripe; the fake STACKIT and
    Microsoft marketplaces) and point the sandbox URLs at them. The fake Stripe's and Microsoft's webhooks, and
    Microsoft's landing page, go to the portal on PUBLIC_PORT, when known."""
    from app.sandbox.digitalocean_api import DigitalOceanFake
    from app.sandbox.hetzner_api import HetznerFake
    from app.sandbox.microsoft_api import start_sandbox_microsoft

    boot = float(config.get("SANDBOX_BOOT_SECONDS", 8.0))  # type: ignore[arg-type]
    timings = {"boot_seconds": boot, "action_seconds": boot * 3 / 8}
    hetzner = serve(HetznerFake(demo=True, **timings), hetzner_port)
    digitalocean = serve(DigitalOceanFake(demo=True, **timings), digitalocean_port)
    config["SANDBOX_HETZNER_URL"] = hetzner.url + "/v1"
    config["SANDBOX_DIGITALOCEAN_URL"] = digitalocean.url + "/v2/"
    return [hetzner, digitalocean, start_sandbox_stripe(config, stripe_port),
            start_sandbox_stackit(config, stackit_port), start_sandbox_microsoft(config, microsoft_port)]


def start_sandbox_stripe(config: dict[str, object], port: int = 0) -> FakeServer:
    """Serve the fake Stripe API and point SANDBOX_STRIPE_URL at it."""
    from app.sandbox.stripe_api import StripeFake

    public_port = config.get("PUBLIC_PORT")
    webhook_url = f"http://127.0.0.1:{public_port}/webhooks/stripe/{{account}}" if public_port else None
    fake = StripeFake(webhook_url=webhook_url,
                      webhook_secret=str(config.get("SANDBOX_STRIPE_WEBHOOK_SECRET") or "whsec_sandbox_local"))
    stripe = serve(fake, port)
    config["SANDBOX_STRIPE_URL"] = stripe.url
    return stripe


def start_sandbox_stackit(config: dict[str, object], port: int = 0) -> FakeServer:
    """Serve the fake STACKIT Marketplace and point SANDBOX_STACKIT_URL at it (its redirect tokens' issuer is
    SANDBOX_STACKIT_URL + "/v1/resolve-customer/keys.json", as the portal checks)."""
    from app.sandbox.stackit_api import StackitFake

    fake = StackitFake()
    stackit = serve(fake, port)
    fake.base_url = stackit.url
    config["SANDBOX_STACKIT_URL"] = stackit.url
    return stackit
