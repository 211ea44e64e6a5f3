"""File safety: another local user cannot take over a database (its directory,
its -wal and -shm, its owner) or a task's code (its module, package, search
directory, or a module planted beside it)."""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Result, run_bgproc, snapshot
from daemon_tasks.helpers import monitor_run, run_of, schedule

from bgproc.errors import StoreError
from bgproc.store.sqlite import SQLiteStore as Store

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def refused(result: Result, *words: str) -> str:
    """Non-zero, one `bgproc: error:` line naming the problem, nothing on stdout."""
    assert result.code != 0, result.out
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bgproc: error: "), result.err
    assert result.out == ""
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(autouse=True)
def isolated_imports(tmp_path: Path) -> Iterator[None]:
    """Task modules registered in-process are imported afresh by the next test."""
    saved_path, before = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = saved_path
    for name in set(sys.modules) - before:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


# ----------------------------------------------------------------------
# The database


def test_a_new_database_its_wal_and_shm_are_the_owners_only_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "bg.db"
    old = os.umask(0)
    try:
        with Store.open(path) as store:
            store.conn.execute("SELECT count(*) FROM tasks").fetchone()
            assert os.umask(0) == 0  # put back as it was while the store is open
            for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert mode(file) == 0o600, file
            assert mode(path.parent) == mode(path.parent.parent) == 0o700
    finally:
        os.umask(old)


@pytest.mark.parametrize("dir_mode", [0o777, 0o1777, 0o770, 0o1733])
def test_a_database_in_a_directory_others_can_write_is_refused(
    tmp_path: Path, cli: Callable[..., Result], db: Path, dir_mode: int
) -> None:
    db.parent.mkdir()
    os.chmod(db.parent, dir_mode)
    line = refused(cli("register", "sample_tasks.activities"), f"directory {db.parent}", "writable by others",
                   f"mode {dir_mode:o}", "give --db a path in a directory only you can write")
    assert (f"chmod go-w {db.parent}" in line) == (not dir_mode & stat.S_ISVTX)  # not for a shared /tmp
    assert os.listdir(db.parent) == []  # nothing written


def test_a_database_made_while_the_directory_was_shared_is_refused_at_the_next_open(tmp_path: Path) -> None:
    path = tmp_path / "d" / "bg.db"
    Store.open(path).close()
    os.chmod(path.parent, 0o1777)
    with pytest.raises(StoreError, match="writable by others"):
        Store.open(path)


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
@pytest.mark.parametrize("how", ["mode 666", "owned by nobody", "symlink", "fifo"])
@pytest.mark.parametrize("when", ["before it exists", "while it is closed"])
def test_a_planted_wal_or_shm_is_refused(tmp_path: Path, suffix: str, how: str, when: str) -> None:
    if how == "owned by nobody" and os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    path = tmp_path / "bg.db"
    if when == "while it is closed":
        Store.open(path).close()
    before = path.read_bytes() if path.exists() else None
    planted = Path(f"{path}{suffix}")
    if how == "symlink":
        target = tmp_path / "theirs"
        target.write_bytes(b"")
        planted.symlink_to(target)
    elif how == "fifo":
        os.mkfifo(planted, 0o600)
    else:
        planted.write_bytes(b"")
        os.chmod(planted, 0o666 if how == "mode 666" else 0o600)
        if how == "owned by nobody":
            os.chown(planted, NOBODY, NOBODY)
    words = {"mode 666": "writable by others (mode 666); run: chmod 600", "owned by nobody": "belongs to nobody",
             "symlink": "is a symbolic link", "fifo": "is not a regular file"}[how]
    with pytest.raises(StoreError, match=re.escape(f"{planted}, part of database {path}, ") + ".*" + re.escape(words)):
        Store.open(path)
    assert (path.read_bytes() if path.exists() else None) == before  # nothing created or written
    assert planted.is_symlink() or planted.stat().st_size == 0  # nor written through


@needs_root
def test_a_database_owned_by_another_user_is_refused_even_to_root(tmp_path: Path, cli: Callable[..., Result],
                                                                  db: Path) -> None:
    Store.open(db).close()
    os.chown(db, NOBODY, NOBODY)
    before = snapshot(db)
    refused(cli("daemon", "--once"), f"database {db} belongs to nobody", "as root",
            "run bgproc as nobody", "systemd's User=nobody")
    assert snapshot(db) == before


@needs_root
def test_a_database_in_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o755)
    os.chown(directory, NOBODY, NOBODY)
    with pytest.raises(StoreError, match=f"directory {directory} of database .* belongs to nobody"):
        Store.open(directory / "bg.db")
    assert os.listdir(directory) == []


def test_a_database_others_can_read_is_refused_since_its_wal_would_be_too(tmp_path: Path) -> None:
    path = tmp_path / "bg.db"
    Store.open(path).close()
    os.chmod(path, 0o644)
    with pytest.raises(StoreError, match=f"database {path} is readable by others \\(mode 644\\); run: chmod 600"):
        Store.open(path)


def test_a_symlinked_database_is_checked_and_opened_where_it_really_is(tmp_path: Path) -> None:
    private = tmp_path / "private"
    Store.open(private / "bg.db").close()
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    link = shared / "link.db"
    link.symlink_to(private / "bg.db")
    with Store.open(link) as store:  # the link's directory does not matter: it is not opened again
        assert store.path == private / "bg.db"
    (private / "in-shared.db").symlink_to(shared / "real.db")
    with pytest.raises(StoreError, match=f"directory {shared} of database {shared / 'real.db'}"):
        Store.open(private / "in-shared.db")
    assert not (shared / "real.db").exists()


def test_the_demo_in_a_shared_directory_says_to_choose_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bgproc.cli import run

    shared = tmp_path / "pub"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    monkeypatch.chdir(shared)
    monkeypatch.delenv("BGPROC_DB", raising=False)
    code = run(["demo"])
    out, err = capsys.readouterr()
    refused(Result(code, out, err), f"directory {shared}", "writable by others", "--db")
    assert os.listdir(shared) == []


# ----------------------------------------------------------------------
# Task modules


TASK = """\
from bgproc import BackgroundTask, NoParams
{extra}
class {name}(BackgroundTask[NoParams]):
    def run(self, params: NoParams) -> None:
        {body}
"""


def _module(directory: Path, name: str, extra: str = "", body: str = "pass") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    file = directory / f"{name.lower()}_tasks.py"
    file.write_text(TASK.format(name=name, extra=extra, body=body))
    return file


IMPORTED = "import pathlib; pathlib.Path(__file__).with_name('imported').touch()"


@pytest.mark.parametrize("shared", ["search directory", "sticky search directory", "module file"])
def test_a_module_others_can_write_is_refused_before_it_runs(
    tmp_path: Path, cli: Callable[..., Result], db: Path, shared: str
) -> None:
    directory = tmp_path / "mods"
    file = _module(directory, "Shared", IMPORTED)
    place = file if shared == "module file" else directory
    os.chmod(place, {"search directory": 0o777, "sticky search directory": 0o1777, "module file": 0o666}[shared])
    refused(cli("register", str(file)), f"task module {file}", f"{place}", "is writable by others",
            f"chmod go-w {place}")
    assert not (directory / "imported").exists()
    assert not db.exists()


def test_a_package_directory_others_can_write_is_refused(
    tmp_path: Path, cli: Callable[..., Result], db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "app" / "sharedpkg"
    _module(package, "Packaged", IMPORTED)
    (package / "__init__.py").write_text("")
    os.chmod(package, 0o777)
    refused(cli("register", str(package / "packaged_tasks.py")), f"a directory of its, {package}",
            "writable by others", f"chmod go-w {package}")
    monkeypatch.chdir(tmp_path / "app")
    refused(cli("register", "sharedpkg.packaged_tasks"), f"{package}", "writable by others")
    assert not (package / "imported").exists()


def test_a_module_named_as_a_standard_library_module_is_refused(tmp_path: Path, cli: Callable[..., Result]) -> None:
    file = _module(tmp_path / "mods", "Csv")
    os.rename(file, file.with_name("csv.py"))
    refused(cli("register", str(file.with_name("csv.py"))), "'csv' is the name of a standard-library module",
            "rename the file")


def test_a_module_named_as_an_installed_package_is_refused(tmp_path: Path, cli: Callable[..., Result]) -> None:
    import importlib.util

    installed = importlib.util.find_spec("cronsim")
    assert installed is not None and installed.origin
    file = _module(tmp_path / "mods", "Cronsim")
    os.rename(file, file.with_name("cronsim.py"))
    refused(cli("register", str(file.with_name("cronsim.py"))), "the module name 'cronsim' is already taken by",
            installed.origin, "rename the file")


PROBE = """\
import json, os, sys, pathlib
import sibling_helper
class Probe(BackgroundTask[NoParams]):
    def run(self, params: NoParams) -> None:
        import csv
        pathlib.Path(os.environ["PROBE_OUT"]).write_text(json.dumps({
            "csv": csv.__file__, "sibling": sibling_helper.__file__, "cwd": os.getcwd(), "path": sys.path,
        }))
"""


@pytest.mark.daemon
def test_a_module_planted_beside_a_task_does_not_shadow_the_standard_library(db: Path, tmp_path: Path) -> None:
    directory = tmp_path / "mods"
    directory.mkdir()
    (directory / "probe_tasks.py").write_text("from bgproc import BackgroundTask, NoParams\n" + PROBE)
    (directory / "sibling_helper.py").write_text("")
    (directory / "csv.py").write_text(IMPORTED)  # another user's, before the directory was made safe
    out = tmp_path / "probe.json"
    assert run_bgproc(db, "register", str(directory / "probe_tasks.py")).code == 0
    request = schedule(db, "Probe")
    done = run_bgproc(db, "daemon", "--once", timeout=60, PROBE_OUT=str(out))
    assert done.code == 0, done.err
    run = run_of(db, request)
    assert run is not None and run["status"] == "success", monitor_run(db, run["id"])["log"] if run else None
    import csv as real_csv
    import json

    seen = json.loads(out.read_text())
    assert seen["csv"] == real_csv.__file__ and not (directory / "imported").exists()
    assert seen["sibling"] == str(directory / "sibling_helper.py")  # its own modules still import
    stdlib = os.path.dirname(real_csv.__file__)
    assert seen["path"].index(str(directory)) > seen["path"].index(stdlib)
    assert seen["cwd"] not in seen["path"] and "" not in seen["path"]  # the worker ran with -P


@pytest.mark.daemon
def test_a_module_others_can_write_after_registering_fails_its_run_in_one_line(db: Path, tmp_path: Path) -> None:
    directory = tmp_path / "mods"
    file = _module(directory, "Later", IMPORTED)
    assert run_bgproc(db, "register", str(file)).code == 0
    request = schedule(db, "Later")
    (directory / "imported").unlink()
    os.chmod(directory, 0o777)
    done = run_bgproc(db, "daemon", "--once", timeout=60)
    assert done.code == 0, done.err
    run = monitor_run(db, run_of(db, request)["id"])
    assert run["status"] == "error" and run["exit_code"] == 1
    assert f"cannot start: task module {file}: its search directory, {directory}, is writable by others" in run["log"]
    assert "Traceback" not in run["log"] and not (directory / "imported").exists()
