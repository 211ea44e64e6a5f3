"""The entry point: run the app, and turn every error a user can cause into one
line on stderr and an exit status."""

from __future__ import annotations

import functools
import re
import sys
from typing import Any

import typer

from ..errors import BgprocError
from ..safetext import escape
from .app import app

# Typer now carries its own copy of click, so find click's exception classes
# through what typer exports rather than importing click.
_USAGE_ERROR: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
# Raised for `bgproc` alone by click 8.2+; older versions print the help themselves.
_NO_ARGS_IS_HELP: Any = getattr(sys.modules[_USAGE_ERROR.__module__], "NoArgsIsHelpError", ())


@functools.cache
def _command() -> Any:
    return typer.main.get_command(app)


def run(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors are one line on stderr)."""
    command = _command()
    args = sys.argv[1:] if argv is None else argv
    try:
        result = command.main(args=args, prog_name="bgproc", standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 0
    except _USAGE_ERROR as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "bgproc"
        message = _one_line(exc.format_message()).rstrip(".")
        sys.stderr.write(f"bgproc: error: {message} (see `{escape(command)} --help`)\n")
        return 2
    except typer.Abort:
        sys.stderr.write("bgproc: aborted\n")
        return 130
    except BgprocError as exc:
        sys.stderr.write(f"bgproc: error: {_one_line(str(exc))}\n")
        return exc.exit_code
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


def _one_line(message: str) -> str:
    """A message on one line: ASCII whitespace runs folded to a space, and what a
    user or a task wrote in it (a bidi override, a U+2028, an escape sequence)
    shown escaped rather than obeyed."""
    return escape(re.sub(r"[ \t\n\r\f\v]+", " ", message).strip())


def main() -> None:
    sys.exit(run())
