"""Running the Huey consumer: in its own process (`flask worker`) or beside the web server (`flask up`)."""

from __future__ import annotations

import signal

from huey.consumer import Consumer

from app.tasks import email, huey, jobs  # noqa: F401  (importing them registers the tasks)


def consumer(workers: int) -> Consumer:
    return huey.create_consumer(workers=workers, worker_type="thread", periodic=True, scheduler_interval=1,
                                check_worker_health=True)


def run(workers: int) -> None:
    """Block, consuming tasks, until SIGINT or SIGTERM (production worker processes)."""
    consumer(workers).run()


def start_beside_web_server(workers: int = 2) -> Consumer:
    """Start worker threads in this process and give the signals back to the web server."""
    started = consumer(workers)
    started.start()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    return started
