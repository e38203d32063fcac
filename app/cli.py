"""Command-line entry points: `flask --app wsgi demo-data`, `flask --app wsgi up`."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import WSGIRequestHandler

from app.config import SANDBOX_FILE, SANDBOX_URLS
from app.tasks.commands import AsOf, jobs_command

LOG_REQUESTS = ("quiet", "all")


def register(app: Flask) -> None:
    app.cli.add_command(demo_data_command)
    app.cli.add_command(up_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(fake_clouds_command)
    app.cli.add_command(jobs_command)
    app.cli.add_command(usage_command)


@click.command("demo-data")
def demo_data_command() -> None:
    """Load the demo tenants, accounts and catalogue (only what is missing)."""
    from app.services.demo import load_demo_data

    summary = load_demo_data()
    click.echo(f"Demo data: {len(summary.created)} rows created" if summary.created else "Demo data already loaded")


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "5000")), show_default="5000 or $PORT")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the demo data if missing.")
@click.option("--log-requests", type=click.Choice(LOG_REQUESTS),
              default=lambda: os.environ.get("LOG_REQUESTS", "quiet"), show_default="quiet or $LOG_REQUESTS",
              help="quiet: log no successful htmx GET (the pages' self-refreshing regions) and no successful "
                   "sandbox cloud request.")
def up_command(host: str, port: int, demo: bool, log_requests: str) -> None:
    """Migrate the database, load the demo data, start the background worker and serve the portal."""
    from flask import current_app
    from werkzeug.serving import run_simple

    from app.services.demo import load_demo_data

    upgrade()
    if demo:
        summary = load_demo_data()
        click.echo(f"Demo data: {len(summary.created)} rows created." if summary.created
                   else "Demo data already loaded.")
    from app.tasks.worker import start_beside_web_server

    if not current_app.config.get("PUBLIC_PORT"):  # links in emails the worker sends point at this portal
        current_app.config["PUBLIC_PORT"] = port
    clouds = _sandbox_clouds(quiet=log_requests == "quiet")
    worker = start_beside_web_server(workers=2)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop as on Ctrl+C: the worker, the clouds, their file
    click.secho(f"\n  Cloud portal running at http://{host}:{port}/  (Ctrl+C to stop)\n", fg="green", bold=True)
    try:
        run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False,
                   request_handler=QuietPollingHandler if log_requests == "quiet" else WSGIRequestHandler)
    finally:
        worker.stop()
        for cloud in clouds:
            cloud.shutdown()


def _sandbox_clouds(*, quiet: bool) -> list[Any]:
    """Serve the fake cloud APIs unless the environment points at running ones."""
    from flask import current_app

    from app.sandbox import start_sandbox_clouds

    config = current_app.config
    given = config.get("SANDBOX_HETZNER_URL") or config.get("SANDBOX_DIGITALOCEAN_URL")
    if given and not config.get("SANDBOX_FROM_RUNNING_UP"):  # the environment points at running ones
        return []
    clouds = start_sandbox_clouds(config)
    # Other commands on this machine (`flask jobs run`) find them here while this one runs.
    sandbox_file = Path(current_app.instance_path) / SANDBOX_FILE
    sandbox_file.write_text(json.dumps({key: config[key] for key in SANDBOX_URLS}))
    atexit.register(sandbox_file.unlink, missing_ok=True)
    if quiet:  # each live refresh of a server's card asks the sandbox cloud too
        for cloud in clouds:
            cloud.server.RequestHandlerClass = QuietSuccessHandler
    click.echo(f"Sandbox clouds: Hetzner API at {config['SANDBOX_HETZNER_URL']}, "
               f"DigitalOcean API at {config['SANDBOX_DIGITALOCEAN_URL']}, "
               f"Stripe API at {config['SANDBOX_STRIPE_URL']}")
    for name, url in _sandbox_purchase_pages(config).items():
        click.echo(f"Buy through the sandbox {name}: {url}")
    return clouds


def _sandbox_purchase_pages(config: Any) -> dict[str, str]:
    """The fake marketplaces' purchase pages for the default tenant (they send the customer to this portal)."""
    from flask import current_app

    from app.domain.marketplaces import Marketplace
    from app.sandbox.stackit_api import purchase_url
    from app.services.marketplace_connections import sandbox_ids

    slug, port = current_app.config["DEFAULT_TENANT"], config.get("PUBLIC_PORT")
    if not port:
        return {}
    project = sandbox_ids(slug, Marketplace.STACKIT)["project_id"]
    return {
        "Microsoft marketplace": f"{config['SANDBOX_MICROSOFT_URL']}/purchase?publisher={slug}",
        "STACKIT Marketplace": purchase_url(str(config["SANDBOX_STACKIT_URL"]), project,
                                            f"http://127.0.0.1:{port}/marketplace/stackit/signup"),
    }


def _succeeded(code: int | str) -> bool:
    return str(code).startswith(("2", "3"))


class QuietPollingHandler(WSGIRequestHandler):
    """The development server's handler, without an access log line for each successful htmx GET.

    A subscription page refreshes its regions every 1 to 4 seconds; logging each of those requests buries
    everything else. Page loads, every POST and every answer of 400 or more are still logged.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.command == "GET" and self.headers.get("HX-Request") == "true" and _succeeded(code):
            return
        super().log_request(code, size)


class QuietSuccessHandler(WSGIRequestHandler):
    """For the sandbox clouds' fake APIs beside `flask up`: only their errors are logged."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if not _succeeded(code):
            super().log_request(code, size)


@click.command("worker")
@click.option("--workers", default=4, show_default=True, help="Worker threads.")
def worker_command(workers: int) -> None:
    """Run the background worker: provisioning, cancellations that take effect, backorders."""
    from app.tasks.worker import run

    run(workers)


@click.command("fake-clouds")
@click.option("--hetzner-port", default=8701, show_default=True)
@click.option("--digitalocean-port", default=8702, show_default=True)
@click.option("--stripe-port", default=8703, show_default=True)
@click.option("--stackit-port", default=8704, show_default=True)
@click.option("--microsoft-port", default=8705, show_default=True)
def fake_clouds_command(hetzner_port: int, digitalocean_port: int, stripe_port: int, stackit_port: int,
                        microsoft_port: int) -> None:
    """Serve the sandbox clouds' fake APIs on 127.0.0.1, for web and worker processes started separately.

    Point them at it with SANDBOX_HETZNER_URL=http://127.0.0.1:8701/v1 and
    SANDBOX_DIGITALOCEAN_URL=http://127.0.0.1:8702/v2/ and SANDBOX_STRIPE_URL=http://127.0.0.1:8703,
    SANDBOX_STACKIT_URL=http://127.0.0.1:8704 and SANDBOX_MICROSOFT_URL=http://127.0.0.1:8705 (the fake Stripe's
    and Microsoft's webhooks, and Microsoft's landing page, go to the portal on $PUBLIC_PORT, when set).
    """
    import threading

    from flask import current_app

    from app.sandbox import start_sandbox_clouds

    clouds = start_sandbox_clouds(dict(current_app.config), hetzner_port=hetzner_port,
                                  digitalocean_port=digitalocean_port, stripe_port=stripe_port,
                                  stackit_port=stackit_port, microsoft_port=microsoft_port)
    click.echo(f"Hetzner API: {clouds[0].url}/v1   DigitalOcean API: {clouds[1].url}/v2/   "
               f"Stripe API: {clouds[2].url}   STACKIT Marketplace: {clouds[3].url}   "
               f"Microsoft marketplace: {clouds[4].url}   (Ctrl+C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for cloud in clouds:
            cloud.shutdown()


@click.group("usage")
def usage_command() -> None:
    """Record metered usage of usage-based subscriptions (one record, or a CSV file)."""


def _tenant(slug: str) -> Any:
    from app.selectors.tenants import tenant_by_slug

    tenant = tenant_by_slug(slug)
    if tenant is None:
        raise click.ClickException(f"There is no tenant {slug!r}.")
    return tenant


@usage_command.command("record")
@click.argument("subscription_id", type=click.IntRange(min=1, max=2**31 - 1))
@click.argument("metric")
@click.argument("quantity", type=click.IntRange(min=0))
@click.option("--at", type=AsOf(), metavar="TIME", help="When it was used (ISO 8601 with Z or an offset); "
              "default: now.")
@click.option("--key", help="Idempotency key, unique per subscription; default: made of the metric, time and "
              "quantity, so running the same command again records nothing twice.")
@click.option("--tenant", "slug", required=True, help="The tenant's slug.")
def usage_record_command(subscription_id: int, metric: str, quantity: int, at: Any, key: str | None,
                         slug: str) -> None:
    """Record QUANTITY units of METRIC used by subscription SUBSCRIPTION_ID."""
    from app.clock import now
    from app.domain.billing import UsageSource
    from app.services import usage
    from app.services.actors import Actor
    from app.services.errors import ServiceError

    tenant = _tenant(slug)
    moment = at or now()
    try:
        row = usage.record(tenant=tenant, actor=Actor.system("usage-cli"), subscription_id=subscription_id,
                           metric=metric, quantity=quantity, recorded_at=moment, source=UsageSource.CLI,
                           idempotency_key=key or f"cli-{metric}-{moment:%Y%m%dT%H%M%S.%f%z}-{quantity}")
    except ServiceError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Usage record {row.id}: {row.quantity} {row.metric} of subscription {subscription_id} at "
               f"{row.recorded_at:%Y-%m-%d %H:%M:%S} UTC (key {row.idempotency_key}).")


@usage_command.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--tenant", "slug", required=True, help="The tenant's slug.")
def usage_import_command(file: Any, slug: str) -> None:
    """Record the usage in a CSV FILE (subscription_id,metric,quantity,timestamp,idempotency_key), all or none."""
    from app.services import usage
    from app.services.actors import Actor
    from app.services.errors import ServiceError

    tenant = _tenant(slug)
    try:
        text = file.read(8 * 1024 * 1024 + 1).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException("The file is not UTF-8 text.") from None
    if len(text) > 8 * 1024 * 1024:
        raise click.ClickException("The file is larger than 8 MiB; split it.")
    try:
        outcome = usage.import_csv(tenant=tenant, actor=Actor.system("usage-cli"), text=text)
    except ServiceError as error:
        raise click.ClickException(error.message) from None
    if not outcome.ok:
        raise click.ClickException("Nothing was recorded:\n" + "\n".join(outcome.problems))
    click.echo(f"{outcome.recorded} records recorded, {outcome.already} already recorded.")
