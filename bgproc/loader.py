"""Importing a task class from its recorded import path.

Shared by the registry (in the command line) and the worker, so it stays
as light as the task API.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

from . import filesafety
from .errors import BgprocError, RegistryError
from .task import BackgroundTask


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and message, or a SyntaxError's place."""
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else f"line {exc.lineno}"
        return f"SyntaxError: {exc.msg} ({where})"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# The search paths this process appended to sys.path for task modules.
ADDED_SEARCH_PATHS: set[str] = set()


def load_task_class(import_path: str, search_path: str | None) -> type[BackgroundTask[Any]]:
    """Import ``module:Qualname`` (its top-level package from ``search_path``) and check it is a task."""
    module_name, _, qualname = import_path.partition(":")
    try:
        # What a module prints on import is not the command's output (--json stays pure).
        with contextlib.redirect_stdout(sys.stderr):
            module = import_module_from(module_name, search_path)
        obj: object = module
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except BgprocError:
        raise  # a module others can write: its own message says what to do
    except Exception as exc:  # noqa: BLE001 - user code may raise anything
        raise RegistryError(
            f"cannot load task {import_path}: {one_line(exc)}; re-register its module"
        ) from None
    if not (isinstance(obj, type) and issubclass(obj, BackgroundTask)):
        raise RegistryError(f"{import_path} is not a BackgroundTask class; re-register its module")
    return obj


def import_module_from(name: str, search_path: str | None) -> ModuleType:
    """Import ``name``, its top-level package found in ``search_path`` only, each
    level checked (``filesafety``) before its code runs.

    The search path goes last on ``sys.path``, after the standard library and
    installed packages: the module's own ``import csv`` never finds a ``csv.py``
    planted beside it, while its sibling modules stay importable. A module an
    application imported already (the Python API) is used as it is.
    """
    if name in sys.modules or not search_path:
        return importlib.import_module(name)
    if search_path not in sys.path:
        sys.path.append(search_path)
        ADDED_SEARCH_PATHS.add(search_path)
    parts = name.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        if prefix in sys.modules:
            continue
        if depth == 1:
            spec = importlib.machinery.PathFinder.find_spec(prefix, [search_path])
        else:
            spec = importlib.util.find_spec(prefix)  # its parent is imported by now
        if spec is None:
            raise ModuleNotFoundError(f"No module named {prefix!r} in {search_path}", name=prefix)
        if spec.origin and spec.has_location:
            filesafety.check_module_file(spec.origin, search_path)
        if depth == 1:
            _execute(spec)
        else:
            importlib.import_module(prefix)
    return sys.modules[name]


def _execute(spec: importlib.machinery.ModuleSpec) -> None:
    """Import a top-level module from its spec, as ``import`` would."""
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        assert spec.loader is not None
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(spec.name, None)
        raise
