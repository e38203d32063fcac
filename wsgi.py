"""Entry point for gunicorn (`gunicorn wsgi:app`) and for `flask --app wsgi ...`."""

import gc

from app import create_app

app = create_app()

# What exists now (modules, the app, its templates and mappers) lives as long as the process. Frozen, the
# garbage collector stops walking it on every full collection, which a busy process's requests trigger often
# enough to cost about a millisecond per order placed.
gc.freeze()
