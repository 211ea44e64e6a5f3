"""The architecture's arrows point one way; these tests hold them there."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "bgproc"

# Which bgproc modules may import which third-party libraries (anywhere in the module).
ALLOWED = {
    "typer": {"cli"},
    "rich": {"cli", "monitor", "follow", "reporter", "demo"},
    # task: connection.db, opened lazily; demo: reads the sample application's own table
    "sqlite_utils": {"store", "task", "demo"},
    "cron_descriptor": {"timing"},
    "msgpack": {"params", "child", "daemon"},
    "platformdirs": {"store"},
}
# Modules the child (a worker process) may import: the task API, the codec, the
# loader, file safety, the worker protocol, and what they need.
CHILD_MAY_IMPORT = {
    "bgproc", "bgproc.child", "bgproc.lifeline", "bgproc.task", "bgproc.params", "bgproc.errors",
    "bgproc.loader", "bgproc.filesafety", "bgproc.daemon", "bgproc.daemon.protocol",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_third_party_libraries_stay_in_their_layer() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).parts[0].removesuffix(".py")  # a package's modules count as it
        for library, allowed in ALLOWED.items():
            if library in _imports(path):
                assert module in allowed, f"bgproc/{path.name} imports {library}; only {sorted(allowed)} may"


def test_store_and_services_do_not_import_the_command_line() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem in ("cli", "__main__"):
            continue
        source = path.read_text()
        assert "from .cli import" not in source and "bgproc.cli" not in source, path.name


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


def test_workers_find_bgproc_and_relative_pythonpath_entries_from_their_own_directory(tmp_path: Path) -> None:
    from bgproc.daemon.pool import worker_pythonpath

    entries = worker_pythonpath(f"relative/dir{':'}/abs/dir").split(":")
    assert entries[0] == str(PACKAGE.parent)
    assert entries[1] == str(Path("relative/dir").absolute()) and entries[2] == "/abs/dir"


def test_nothing_uses_waitid() -> None:
    # macOS has no os.waitid before Python 3.13, and bgproc declares >= 3.11: the pool
    # polls its own children with wait4/waitpid and WNOHANG instead.
    assert not [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "waitid" in p.read_text()]
