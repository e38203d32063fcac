"""`flask jobs list` and `flask jobs run NAME [--as-of TIME]`: the periodic jobs, by hand.

Running a job by hand catches up after downtime (`--as-of` the time it should have run) and shows in a
demo what time does (`--as-of` next month); the run is recorded like the worker's own.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, date, datetime, time

import click

from app.models import JobRun, JobTrigger
from app.tasks import jobs  # noqa: F401  (importing the jobs registers them)
from app.tasks.schedule import JOBS, JobFailed, latest_runs, run_job

TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


class JobName(click.ParamType):
    name = "NAME"

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value not in JOBS:
            self.fail(f"there is no job named {value!r}. Known jobs: {', '.join(JOBS)}.", param, ctx)
        return value


class AsOf(click.ParamType):
    """An ISO 8601 time with its offset (`2027-01-15T00:00:00Z`), or a date (midnight UTC)."""

    name = "TIME"

    def convert(self, value: str | datetime, param: click.Parameter | None, ctx: click.Context | None
                ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = value.strip()
        with suppress(ValueError):
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time; write e.g. 2027-01-15T00:00:00Z, "
                      "2027-01-15T09:30:00+01:00 or 2027-01-15 (midnight UTC).", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{value!r} does not say which timezone it is in; add Z for UTC or an offset such as "
                      "+01:00.", param, ctx)
        return moment.astimezone(UTC)


@click.group("jobs")
def jobs_command() -> None:
    """The periodic jobs: list them with their last run, or run one now."""


@jobs_command.command("list")
def list_command() -> None:
    """List the periodic jobs: what each does, when it runs, how its last run went."""
    runs = latest_runs()
    for job in JOBS.values():
        click.echo(f"{click.style(job.name, bold=True)}  ({job.schedule.text})")
        click.echo(f"    {job.description}")
        click.echo(f"    Last run: {describe(runs[job.name]) if job.name in runs else 'never'}")


@jobs_command.command("run")
@click.argument("name", type=JobName())
@click.option("--as-of", type=AsOf(), metavar="TIME",
              help="Run as if it were this time (ISO 8601 with Z or an offset, or a date for midnight UTC); "
                   "default: now.")
def run_command(name: str, as_of: datetime | None) -> None:
    """Run the periodic job NAME once, now or as of another time."""
    try:
        summary = run_job(name, trigger=JobTrigger.COMMAND, as_of=as_of)
    except JobFailed as failure:
        raise click.ClickException(str(failure)) from None
    when = f" (as of {as_of.strftime(TIME_FORMAT)})" if as_of else ""
    click.echo(f"{name}: {summary}{when}")


def describe(run: JobRun) -> str:
    """`succeeded: 3 cancellations took effect; ran 2026-03-15 10:00:00 UTC to 10:00:01, as of ..., by command`."""
    outcome = f"succeeded: {run.summary}" if run.ok else run.summary
    finished = run.finished_at.strftime("%H:%M:%S" if run.finished_at.date() == run.started_at.date()
                                        else TIME_FORMAT)
    as_of = f", as of {run.as_of.strftime(TIME_FORMAT)}" if run.as_of else ""
    return f"{outcome}; ran {run.started_at.strftime(TIME_FORMAT)} to {finished}{as_of}, by {run.trigger.value}"
