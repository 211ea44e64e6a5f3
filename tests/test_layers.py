"""The architecture's arrows point one way; these tests hold them there."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bgproc"

# Where in bgproc each third-party library may be imported: a module ("task.py") or a
# package and everything under it ("cli/").
ALLOWED = {
    "typer": {"cli/"},
    "rich": {"cli/", "daemon/reporter.py"},  # the command line, and the daemon's terminal status line
    # task: connection.db, opened lazily; cli/demo.py: reads the sample application's own table
    "sqlite_utils": {"store/sqlite/", "task.py", "cli/demo.py"},
    "cron_descriptor": {"timing/"},
    "msgpack": {"params/", "child.py", "daemon/"},
    "platformdirs": {"store/sqlite/"},
    "psycopg": {"store/postgres/"},
}
# Modules the child (a worker process) may import: the task API, the codec, the
# loader, file safety, the worker protocol, and what they need.
CHILD_MAY_IMPORT = {
    "bgproc", "bgproc.child", "bgproc.lifeline", "bgproc.task", "bgproc.params", "bgproc.errors",
    "bgproc.loader", "bgproc.filesafety", "bgproc.daemon", "bgproc.daemon.protocol",
}


def _imports(path: Path) -> set[str]:
    """The top-level names of the absolute imports in ``path``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _bgproc_imports(path: Path) -> set[str]:
    """The bgproc modules ``path`` imports, relative imports resolved (``from . import x``
    counts as ``bgproc.package.x``: it may be a module)."""
    package = ["bgproc", *path.relative_to(PACKAGE).parts[:-1]]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "bgproc" or name.startswith("bgproc.")}


def _place(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_third_party_libraries_stay_in_their_layer() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        place, imported = _place(path), _imports(path)
        for library, allowed in ALLOWED.items():
            if library in imported:
                assert any(place == a or (a.endswith("/") and place.startswith(a)) for a in allowed), (
                    f"bgproc/{place} imports {library}; only {sorted(allowed)} may"
                )


def test_nothing_outside_the_command_line_imports_it() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        if _place(path).startswith("cli/") or _place(path) == "__main__.py":
            continue
        used = {name for name in _bgproc_imports(path) if name == "bgproc.cli" or name.startswith("bgproc.cli.")}
        assert not used, f"bgproc/{_place(path)} imports {sorted(used)}, a part of the command line"


def test_child_imports_only_the_task_api_the_codec_and_the_protocol() -> None:
    watched = "('bgproc.', 'sqlite_utils', 'typer', 'rich', 'click', 'cron_descriptor')"
    code = (
        "import sys, bgproc.child; "
        f"print('\\n'.join(sorted(m for m in sys.modules if m == 'bgproc' or m.startswith({watched}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = {m for m in out.split() if not m.startswith("bgproc.params.")}  # the codec's own modules
    assert loaded <= CHILD_MAY_IMPORT, f"the child also loads {sorted(loaded - CHILD_MAY_IMPORT)}"


def test_the_worker_protocol_is_the_standard_library_and_msgpack_only() -> None:
    path = PACKAGE / "daemon" / "protocol.py"
    outside = _imports(path) - set(sys.stdlib_module_names) - {"__future__", "msgpack"}
    assert not outside, f"bgproc/daemon/protocol.py imports {sorted(outside)}"
    relative = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
    assert not relative, "bgproc/daemon/protocol.py imports other bgproc modules"


def test_importing_bgproc_is_light() -> None:
    heavy = "('sqlite_utils', 'typer', 'rich', 'msgpack')"
    code = f"import sys, bgproc; print(any(m.startswith({heavy}) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_help_loads_neither_the_store_nor_the_rendering() -> None:
    """Each command imports what it needs when it runs, so that help (and a typo) stays quick."""
    heavy = "('bgproc.store', 'bgproc.cli.render', 'bgproc.daemon', 'sqlite_utils', 'rich', 'msgpack')"
    code = (
        "import contextlib, io, sys; from bgproc.cli import run\n"
        "with contextlib.redirect_stdout(io.StringIO()): run(['schedule', '--help'])\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_workers_find_bgproc_and_relative_pythonpath_entries_from_their_own_directory(tmp_path: Path) -> None:
    from bgproc.daemon.pool import worker_pythonpath

    entries = worker_pythonpath(f"relative/dir{':'}/abs/dir").split(":")
    assert entries[0] == str(PACKAGE.parent)
    assert entries[1] == str(Path("relative/dir").absolute()) and entries[2] == "/abs/dir"


def test_nothing_uses_waitid() -> None:
    # macOS has no os.waitid before Python 3.13, and bgproc declares >= 3.11: the pool
    # polls its own children with wait4/waitpid and WNOHANG instead.
    assert not [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "waitid" in p.read_text()]


# Where SQLite may be named: the SQLite store, the task API's application database
# (``connection.db``) and the demo (it reads the sample application's table).
SQLITE_PLACES = ("store/sqlite/", "task.py", "cli/demo.py")
# What only a store may touch: its transactions and its connection.
STORE_INTERNALS = {"immediate", "savepoint", "conn", "data_version"}


def _names(tree: ast.AST) -> set[str]:
    """Every module imported, name used and attribute read in ``tree``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(f".{node.attr}")
    return names


def test_only_the_sqlite_store_names_sqlite() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        place = path.relative_to(PACKAGE).as_posix()
        if place.startswith(SQLITE_PLACES):
            continue
        used = _names(ast.parse(path.read_text())) & {"sqlite3", "sqlite_utils"}
        assert not used, f"bgproc/{place} names {sorted(used)}: only {SQLITE_PLACES} may"


def test_the_shared_sql_names_no_database_driver() -> None:
    """``store/sql/`` is written once for every SQL store: what a driver or a database
    has of its own stays in that store's package, behind the connection and dialect."""
    drivers = {"sqlite3", "sqlite_utils", "psycopg", "psycopg_pool", "platformdirs"}
    shared = sorted((PACKAGE / "store" / "sql").rglob("*.py"))
    assert shared, "no bgproc/store/sql package"
    for path in shared:
        used = (_imports(path) | _names(ast.parse(path.read_text()))) & drivers
        assert not used, f"bgproc/{_place(path)} names {sorted(used)}: keep it in the store's own package"
        stores = {n for n in _bgproc_imports(path) if n.startswith(("bgproc.store.sqlite", "bgproc.store.postgres"))}
        assert not stores, f"bgproc/{_place(path)} imports {sorted(stores)}: the stores import it, not back"


def test_only_a_store_touches_its_transactions_and_connection() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        place = path.relative_to(PACKAGE).as_posix()
        if place.startswith("store/") or place == "task.py":  # task.py: its own connection.db
            continue
        used = {name[1:] for name in _names(ast.parse(path.read_text())) if name.startswith(".")} & STORE_INTERNALS
        assert not used, f"bgproc/{place} uses a store's {sorted(used)}: call a store operation instead"



# The shape issue 9 set: modules small enough to read at a glance.
MODULE_LINES = 450
CLASS_LINES = 310


def test_no_module_or_class_outgrows_a_glance() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        place = path.relative_to(PACKAGE).as_posix()
        assert source.count("\n") <= MODULE_LINES, f"bgproc/{place} has over {MODULE_LINES} lines: split it"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                assert lines <= CLASS_LINES, f"class {node.name} in bgproc/{place} has {lines} lines: split it"
