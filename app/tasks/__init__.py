"""Background work with Huey: a SQLite-backed queue on one machine, Redis-backed with REDIS_URL.

The queue is chosen from the environment when this module is imported (the worker and the web processes
must agree on it). Tests switch it to immediate mode. Task bodies run inside the app bound by `init_app`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, has_app_context
from huey import Huey, RedisHuey, SqliteHuey

_app: Flask | None = None


def _make_huey() -> Huey:
    if redis_url := os.environ.get("REDIS_URL"):
        return RedisHuey("portal", url=redis_url, utc=True)
    instance = os.environ.get("INSTANCE_PATH") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "instance")
    os.makedirs(instance, exist_ok=True)
    return SqliteHuey("portal", filename=os.path.join(instance, "queue.sqlite3"), utc=True, timeout=15)


huey = _make_huey()


def init_app(app: Flask) -> None:
    """Bind the app whose context task bodies run in (the web process's, or the worker's own), and become
    the runner of the work services ask for (`app.services.work`)."""
    from app.services import work
    from app.tasks import billing, catalogue, email, end_of_life, jobs

    global _app
    _app = app
    app.extensions["huey"] = huey
    for job, task in {**jobs.TASKS, **end_of_life.TASKS, **email.TASKS, **billing.TASKS,
                      **catalogue.TASKS}.items():
        work.bind(job, task)


@contextmanager
def app_context() -> Iterator[Flask]:
    """A fresh app context (its own DB session) of the app running now, else of the bound app."""
    from app.extensions import write_intent

    app = current_app._get_current_object() if has_app_context() else _app  # type: ignore[attr-defined]
    if app is None:  # the worker runs as `flask --app wsgi worker`, whose app binds itself
        raise RuntimeError("no app is bound to the task queue (app.tasks.init_app)")
    intent = write_intent.set(True)  # tasks write: take SQLite's write lock when they begin
    try:
        with app.app_context():
            yield app
    finally:
        write_intent.reset(intent)
