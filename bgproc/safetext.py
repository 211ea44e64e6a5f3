"""Text from tasks and users, made safe to show: nothing in it reaches a terminal
as a command, or changes how the text around it reads.

A run's log, a task's name or description, a progress message, ``--user``, a
run's detail, an error message: any of them may hold control characters
(escape sequences, a carriage return), Unicode format characters (a bidi
override such as U+202E turns what follows around; zero-width characters
hide text) or line and paragraph separators (U+2028, U+2029 and U+0085 break
a line where none shows). ``escape`` shows each one as a visible escape
(``\\x1b``, ``\\u202e``); ``json_text`` writes them as JSON ``\\uXXXX`` escapes,
the same data, which a ``cat`` of the document cannot turn into commands.
Every place that shows such text (the monitor, follow mode, the daemon's
event lines, the command line's messages) goes through here.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

# Controls (C0, DEL, C1), format characters (bidi controls, zero-width
# characters, the soft hyphen, tags), lone surrogates (from undecodable bytes;
# they cannot even be written out), line and paragraph separators.
ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Runs of characters that may need escaping: all but printable ASCII. A run
# that str.isprintable passes (ordinary letters of any script) is kept whole
# at C speed; only a run with something unprintable is looked at one by one.
_CANDIDATES = re.compile(r"[^\x20-\x7e]+")
_CANDIDATES_LINES = re.compile(r"[^\x20-\x7e\t\n]+")


def needs_escape(char: str) -> bool:
    """Whether one character is shown escaped."""
    return unicodedata.category(char) in ESCAPED_CATEGORIES


def escape(text: str, *, lines: bool = False) -> str:
    """``text`` with every control, format or separator character shown as an
    escape: ``\\xNN`` up to U+00FF, else ``\\uXXXX`` (``\\UXXXXXXXX`` past the BMP).

    With ``lines``, newlines and tabs are kept (a log shown as lines); without,
    the result is one line.
    """
    pattern = _CANDIDATES_LINES if lines else _CANDIDATES
    return pattern.sub(_shown, text)


def _shown(match: re.Match[str]) -> str:
    run = match.group()
    if run.isprintable():
        return run
    return "".join(_visible(c) if needs_escape(c) else c for c in run)


def _visible(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def json_text(document: Any, *, indent: int | None = None) -> str:
    """``document`` as JSON, non-ASCII text kept readable, but every character that
    ``escape`` would escape written as a ``\\uXXXX`` escape (the same data)."""
    text = json.dumps(document, indent=indent, ensure_ascii=False)
    # Outside printable ASCII (and the newlines of ``indent``), a JSON document has
    # characters only inside strings, where an escape stands for the character itself.
    return _CANDIDATES_LINES.sub(_json_shown, text)


def _json_shown(match: re.Match[str]) -> str:
    run = match.group()
    if run.isprintable():
        return run
    return "".join(_json_escape(c) if needs_escape(c) else c for c in run)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    # JSON spells a character past the BMP as its UTF-16 surrogate pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
