"""Command-line entry points: `flask --app wsgi demo-data`, `flask --app wsgi up`."""

from __future__ import annotations

import os

import click
from flask import Flask
from flask_migrate import upgrade


def register(app: Flask) -> None:
    app.cli.add_command(demo_data_command)
    app.cli.add_command(up_command)


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
def up_command(host: str, port: int, demo: bool) -> None:
    """Migrate the database, load the demo data, and serve the portal on one machine."""
    from flask import current_app
    from werkzeug.serving import run_simple

    from app.services.demo import load_demo_data

    upgrade()
    if demo:
        summary = load_demo_data()
        click.echo(f"Demo data: {len(summary.created)} rows created." if summary.created
                   else "Demo data already loaded.")
    click.secho(f"\n  Cloud portal running at http://{host}:{port}/  (Ctrl+C to stop)\n", fg="green", bold=True)
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)
