"""``python -m cems.cli``: the ``cems`` command (the services supervisor starts its children so)."""

from cems.cli import app

app()
