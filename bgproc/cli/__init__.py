"""The command line: parse, call one operation, render or print JSON.

Errors a user can cause become one line on stderr and a non-zero exit;
nothing here writes SQL or decides semantics. The Typer app is in ``app.py``,
its commands in one module per group (``tasks``, ``requests``, ``runs``,
``daemon``), the options they share in ``options.py``, and ``main`` and ``run``
in ``entry.py``; rendering (rich) is in ``render.py`` and ``follow.py``. Each
command imports what it needs when it runs, so that ``bgproc --help`` stays quick.
"""

from __future__ import annotations

from .app import app

# Importing a group registers its commands on the app, in the order in which
# `bgproc --help` lists them.
# isort: off
from . import tasks, requests, runs, daemon  # noqa: F401, E402
# isort: on
from .entry import main, run

__all__ = ["app", "main", "run"]
