"""Importing a task class from its recorded import path.

Shared by the registry (in the command line) and the worker, so it stays
as light as the task API.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

from .errors import RegistryError
from .task import BackgroundTask


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and message, or a SyntaxError's place."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else f"line {exc.lineno}"
        return f"SyntaxError: {exc.msg} ({where})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_task_class(import_path: str, search_path: str | None) -> type[BackgroundTask]:
    """Import ``module:Qualname`` (with ``search_path`` on sys.path) and check it is a task."""
    module_name, _, qualname = import_path.partition(":")
    # An application that already imported the module (the Python API) keeps
    # its sys.path as it is; the worker and the command line need the entry.
    if search_path and module_name not in sys.modules and search_path not in sys.path:
        sys.path.insert(0, search_path)
    try:
        # What a module prints on import is not the command's output (--json stays pure).
        with contextlib.redirect_stdout(sys.stderr):
            module = importlib.import_module(module_name)
        obj: object = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise RegistryError(
            f"cannot load task {import_path}: {one_line(exc)}; re-register its module"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, BackgroundTask)):
        raise RegistryError(f"{import_path} is not a BackgroundTask class; re-register its module")
    return obj
