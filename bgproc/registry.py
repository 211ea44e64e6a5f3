"""The registry: which task classes exist, where they live, and their parameters.

``register`` imports modules and records their ``BackgroundTask`` classes;
``resolve`` turns a name (or ``module:Class``) into a record; ``load_class``
imports a recorded task again (the command line to validate parameters,
the worker to run it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import importlib.machinery
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from datetime import datetime
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

from . import params as params_codec
from .errors import BgprocError, ParamsError, RegistryError
from .loader import ADDED_SEARCH_PATHS, import_module_from, load_task_class, one_line
from .reruns import MAX_RETRIES
from .store import Store
from .store.records import TaskRecord
from .task import BackgroundTask
from .timing import parse_duration


@dataclass(frozen=True)
class Registered:
    module: str
    tasks: list[TaskRecord]
    unregistered: list[str]
    param_types: dict[str, type] = field(default_factory=dict, compare=False)


def collect(targets: list[str], cwd: Path | None = None) -> list[Registered]:
    """Import every target and describe its task classes; nothing is written.

    All targets are checked before any is saved, so a broken module leaves
    the registry as it was.
    """
    collected: list[Registered] = []
    owner: dict[str, str] = {}
    for target in targets:
        param_types: dict[str, type] = {}
        module, search_path = import_target(target, cwd or Path.cwd())
        classes = task_classes(module)
        tasks = [describe(cls, search_path) for cls in classes]
        if not tasks:
            unfinished = [cls.__qualname__ for cls in task_classes(module, with_run_only=False)]
            if unfinished:
                raise RegistryError(
                    f"module {module.__name__}: {', '.join(unfinished)} "
                    f"{'does' if len(unfinished) == 1 else 'do'} not implement run(params); "
                    "add the method, or it cannot be registered"
                )
            raise RegistryError(
                f"module {module.__name__} defines no BackgroundTask subclasses; "
                "define `class MyTask(BackgroundTask[MyParams])` in it"
            )
        for cls, task in zip(classes, tasks, strict=True):
            param_types[task.name] = cls.params_type()
        for task in tasks:
            if task.name in owner and owner[task.name] != task.import_path:
                raise RegistryError(
                    f"two tasks are named {task.name!r} ({owner[task.name]} and {task.import_path}); "
                    "give one a different `name`"
                )
            owner[task.name] = task.import_path
        collected.append(Registered(module.__name__, tasks, [], param_types))
    return collected


def save(store: Store, collected: list[Registered], now: datetime) -> list[Registered]:
    """Record collected modules in one transaction; returns what each unregistered.

    A task whose new parameters no longer fit the stored parameters of its
    pending requests is refused: they would otherwise fail in the daemon on
    every run.
    """
    for c in collected:
        for name, ptype in c.param_types.items():
            _check_pending_requests(store, name, ptype)
    _check_vanished_tasks(store, collected)
    gone = store.save_modules([(c.module, c.tasks) for c in collected], now)
    saved = []
    for c, g in zip(collected, gone, strict=True):
        records = [store.get_task(t.name) or t for t in c.tasks]
        saved.append(Registered(c.module, records, g, c.param_types))
    return saved


def _check_pending_requests(store: Store, task: str, ptype: type) -> None:
    misfits = []
    for request_id, data in store.pending_request_params(task):
        try:
            params_codec.decode(ptype, data)
        except ParamsError as exc:
            misfits.append(f"{request_id} ({exc})")
    if misfits:
        ids = " ".join(m.split(" ", 1)[0] for m in misfits)
        raise RegistryError(
            f"task {task}: its new parameters do not fit {len(misfits)} pending request(s): "
            f"{'; '.join(misfits[:3])}{' ...' if len(misfits) > 3 else ''}; "
            f"unschedule them first (bgproc unschedule {ids}) and schedule them again after registering"
        )


def _check_vanished_tasks(store: Store, collected: list[Registered]) -> None:
    """A registered task that these modules no longer define would be unregistered,
    and its pending requests unscheduled: refuse that unless nothing is pending (a
    class removed by mistake, or another file that shares the module's name)."""
    defined = {task.name for c in collected for task in c.tasks}
    places = {c.module: {t.search_path for t in c.tasks} for c in collected}
    for task in store.list_tasks():
        if task.module not in places or task.name in defined:
            continue
        elsewhere = {p for p in places[task.module] if p and task.search_path and p != task.search_path}
        if elsewhere:
            # Another file of the same module name: most likely not the module meant.
            raise RegistryError(
                f"module {task.module} was registered from {task.search_path}, and task {task.name} there "
                f"is not in the one from {sorted(elsewhere)[0]}; rename one of the files, or if the module "
                f"really moved, unregister its old tasks first (bgproc unregister {task.name})"
            )
        pending = [request_id for request_id, _ in store.pending_request_params(task.name)]
        if pending:
            ids = " ".join(str(i) for i in pending[:20]) + (" ..." if len(pending) > 20 else "")
            raise RegistryError(
                f"task {task.name} (from {task.module}) is not in the module being registered, but has "
                f"{len(pending)} pending request(s); check that this is the right file; if the class moved, "
                f"register its new module in the same command; if it was removed, "
                f"unschedule them first (bgproc unschedule {ids})"
            )


def register(store: Store, targets: list[str], now: datetime, cwd: Path | None = None) -> list[Registered]:
    """Import modules (dotted names or ``.py`` paths) and record their task classes."""
    return save(store, collect(targets, cwd), now)


def import_target(target: str, cwd: Path) -> tuple[ModuleType, str]:
    """Import a dotted module name (against cwd and PYTHONPATH) or a .py file.

    Returns the module and the directory that must be on ``sys.path`` to
    import it again. Refused before any of its code runs: a module others
    can write (``filesafety``), and one whose name would hide another module.
    """
    path = Path(target)
    is_file = target.endswith(".py") or path.is_file() or "/" in target or "\\" in target
    if is_file:
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise RegistryError(f"no such file {target}; give a path to a .py file or a dotted module name")
        if path.suffix != ".py":
            raise RegistryError(f"{target} is not a .py file; give a Python module (a .py file or a dotted name)")
        name, root = _module_name_for_file(path.resolve())
        search = str(root)
    else:
        name = target
        search = _search_path_of(name, cwd)
    _refuse_hiding(target, name, search)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep --json on stdout pure
            module = import_module_from(name, search)
    except BgprocError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise RegistryError(
                f"no module named {name!r} (looked in {cwd} and PYTHONPATH); "
                "give a dotted module name or a path to a .py file"
            ) from None
        raise RegistryError(f"cannot import {target}: {one_line(exc)}") from None
    except BaseException as exc:  # noqa: BLE001 - any failure while importing user code
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise RegistryError(f"cannot import {target}: {one_line(exc)}") from None
    if is_file:
        loaded = getattr(module, "__file__", None)
        if loaded is None or Path(loaded).resolve() != path.resolve():
            # Another module of the same name came first (imported already in this
            # process, such as another file registered in the same command).
            raise RegistryError(
                f"cannot register {target}: the module name {name!r} is already taken by "
                f"{loaded or 'a built-in module'}; rename the file"
            )
    return module, _root_of(module) or search


def _search_path_of(name: str, cwd: Path) -> str:
    """Where a dotted name's top-level module is found: the current directory
    first, else wherever the import system finds it (PYTHONPATH, installed)."""
    top = name.partition(".")[0]
    if importlib.machinery.PathFinder.find_spec(top, [str(cwd)]) is not None:
        return str(cwd)
    root = _root_of_spec(_find_spec(top))
    return str(root) if root is not None else str(cwd)


def _refuse_hiding(target: str, name: str, search: str) -> None:
    """A task module must not hide a standard-library module or an installed
    package: the worker would import it for every other ``import`` of that name."""
    top = name.partition(".")[0]
    if top in sys.stdlib_module_names:
        raise RegistryError(
            f"cannot register {target}: {top!r} is the name of a standard-library module, which it "
            "would hide; rename the file (or its package)"
        )
    ours = importlib.machinery.PathFinder.find_spec(top, [search])
    theirs = _find_spec(top)
    if ours is None or theirs is None or ours.origin == theirs.origin:
        return
    if ours.origin and theirs.origin and Path(ours.origin).resolve() == Path(theirs.origin).resolve():
        return
    raise RegistryError(
        f"cannot register {target}: the module name {top!r} is already taken by "
        f"{theirs.origin or 'a built-in module'}; rename the file (or its package)"
    )


def _find_spec(top: str) -> ModuleSpec | None:
    """How ``import top`` resolves here without the task modules' search paths,
    and without running any code."""
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if p not in ADDED_SEARCH_PATHS]
    try:
        return importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    finally:
        sys.path[:] = saved


def _root_of_spec(spec: ModuleSpec | None) -> Path | None:
    """The sys.path entry a top-level module's spec was found in."""
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve().parent
    if spec.origin and spec.has_location:
        return Path(spec.origin).resolve().parent
    return None


def _module_name_for_file(path: Path) -> tuple[str, Path]:
    """A file's dotted module name and the directory above its top package."""
    parts = [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    return ".".join(parts), directory


def _root_of(module: ModuleType) -> str | None:
    """The sys.path entry a module was imported from."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    depth = module.__name__.count(".") + (1 if path.name == "__init__.py" else 0)
    root = path.parent
    for _ in range(depth):
        root = root.parent
    return str(root)


def task_classes(module: ModuleType, *, with_run_only: bool = True) -> list[type[BackgroundTask[Any]]]:
    """Concrete task classes defined in ``module`` (not merely imported into it)."""
    found = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(obj, BackgroundTask)
            and obj is not BackgroundTask
            and obj.__module__ == module.__name__
            and (obj.run is not BackgroundTask.run or not with_run_only)
        ):
            found.append(obj)
    return found


def describe(cls: type[BackgroundTask[Any]], search_path: str | None) -> TaskRecord:
    """A task class as a registry record; its name and parameter types are checked here."""
    name = task_name(cls)
    ptype = cls.params_type()
    if not (isinstance(ptype, type) and dataclasses.is_dataclass(ptype)):
        raise RegistryError(
            f"task {cls.__qualname__}: parameters {getattr(ptype, '__name__', ptype)!s} "
            "are not a dataclass; declare them with @dataclass"
        )
    try:
        params_codec.check_type(ptype)
        fields = params_codec.describe_fields(ptype)
    except ParamsError as exc:
        raise RegistryError(f"task {cls.__qualname__}: {exc}") from None
    except NameError as exc:
        raise RegistryError(f"task {cls.__qualname__}: cannot resolve a field type: {exc}") from None
    try:
        timeout = cls.timeout_seconds()
    except BgprocError as exc:
        raise RegistryError(f"task {cls.__qualname__}: {exc}") from None
    if not isinstance(cls.description, str):
        raise RegistryError(
            f"task {cls.__qualname__}: description {cls.description!r} is not a string; set it to one line "
            "of text, or remove it to use the docstring's first line"
        )
    retries, retry_delay_s, recover = _retry_policy(cls)
    if cls.isolation not in ISOLATIONS:
        raise RegistryError(
            f"task {cls.__qualname__}: isolation {cls.isolation!r} must be one of {', '.join(map(repr, ISOLATIONS))}"
        )
    return TaskRecord(
        name=name,
        import_path=cls.import_path(),
        module=cls.__module__,
        search_path=search_path,
        params_type=f"{ptype.__module__}:{ptype.__qualname__}",
        fields=fields,
        description=cls.description,
        timeout_s=timeout,
        retries=retries,
        retry_delay_s=retry_delay_s,
        recover=recover,
    )


MAX_NAME_LENGTH = 200
ISOLATIONS = ("fork", "spawn")


def task_name(cls: type[BackgroundTask[Any]]) -> str:
    """A task class's ``name``, checked: it is typed as one command-line word
    (``bgproc schedule NAME``), so a non-empty string of printable characters
    without whitespace, not starting with ``-`` (an option), at most 200 long."""
    name: object = cls.name
    problem = None
    if not isinstance(name, str):
        problem = f"is {type(name).__name__} {name!r}, not a string"
    elif not name:
        problem = "is empty"
    elif any(ch.isspace() for ch in name):
        problem = f"{name!r} contains whitespace"
    elif not name.isprintable():
        problem = f"{name!r} contains a control or invisible character"
    elif name.startswith("-"):
        problem = f"{name!r} starts with '-', which the command line reads as an option"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"is {len(name)} characters long, more than {MAX_NAME_LENGTH}"
    if problem is None:
        assert isinstance(name, str)
        return name
    raise RegistryError(
        f"task {cls.__qualname__}: its name {problem}; set `name` to one word of printable characters "
        "(such as name = \"monthly-report\"), or remove it to use the class name"
    )


def _retry_policy(cls: type[BackgroundTask[Any]]) -> tuple[int, float | None, bool]:
    """A task class's ``retries``, ``retry_delay`` (seconds) and ``recover``, checked."""
    name = cls.__qualname__
    retries = cls.retries
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise RegistryError(f"task {name}: retries {retries!r} must be a whole number from 0 to {MAX_RETRIES}")
    if not isinstance(cls.recover, bool):
        raise RegistryError(f"task {name}: recover {cls.recover!r} must be True or False")
    delay = None
    if cls.retry_delay is not None:
        try:
            delay = parse_duration(cls.retry_delay, "retry_delay").total_seconds()
        except BgprocError as exc:
            raise RegistryError(f"task {name}: {exc}") from None
    return retries, delay, cls.recover


def resolve(store: Store, name: str) -> TaskRecord:
    """A registered task by name or ``module:Class`` path."""
    record = store.get_task(name)
    if record is None and ":" in name:
        record = store.find_task_by_import_path(name)
    if record is not None:
        return record
    names = [t.name for t in store.list_tasks()]
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        hint = f"did you mean {close[0]}?"
    elif names:
        hint = f"registered tasks: {', '.join(names[:10])}"
    else:
        hint = "no tasks are registered yet; run `bgproc register MODULE`"
    raise RegistryError(f"unknown task {name!r}; {hint}")


def resolve_class(store: Store, cls: type[BackgroundTask[Any]]) -> TaskRecord:
    """The registry record of a task class given from Python."""
    record = store.find_task_by_import_path(cls.import_path()) or store.get_task(cls.name)
    if record is None or record.import_path != cls.import_path():
        raise RegistryError(
            f"task {cls.import_path()} is not registered; run `bgproc register {cls.__module__}`"
        )
    return record


def load_class(record: TaskRecord) -> type[BackgroundTask[Any]]:
    """Import a registered task class again."""
    return load_task_class(record.import_path, record.search_path)
