"""Logging set-up for the command line and the servers, with every field escaped in one place.

Log fields often come from the network: a request's decoded path, a claim from the identity
provider, a cluster's name. Written as they are, a ``%0a`` in a path starts a forged line. So
the one formatter every handler uses escapes each argument of every record (control and other
unprintable characters, double quotes and backslashes) before it goes into the message, and
escapes what control characters remain in the message itself. A record is therefore always one
line; the only multi-line output, a traceback, has each of its lines after the first indented
by ``CONTINUATION`` so no line of it can pass for a record of its own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

CONTINUATION = "    | "
_QUOTED = {'"': '\\"', "\\": "\\\\"}


def _escape_char(char: str) -> str:
    if char in _QUOTED:
        return _QUOTED[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(value: object) -> str:
    r"""A log field as text on one line: unprintable characters, ``"`` and ``\`` escaped.

    Unprintable means control characters (``\n``, ``\r``, ``\x1b``...), line and paragraph
    separators, format characters such as right-to-left overrides, and spaces other than the
    ASCII one.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(_escape_char(char) for char in text)


def _escape_controls(text: str) -> str:
    """Escape unprintable characters only (the message's own quotes stay as written)."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape_char(char) for char in text)


def _escape_arg(value: Any) -> Any:
    if isinstance(value, int | float):  # bool too: %d and %.1f keep working
        return value
    return escape(value)


def escape_args(args: Any) -> Any:
    """The arguments of a log record, each escaped (a mapping's values, or a tuple's items)."""
    if isinstance(args, Mapping):
        return {key: _escape_arg(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_escape_arg(value) for value in args)
    return args


class EscapingFormatter(logging.Formatter):
    """A formatter whose records are one line each, whatever their arguments hold."""

    def format(self, record: logging.LogRecord) -> str:
        """Format a copy of the record with escaped arguments and an escaped message."""
        copy = logging.makeLogRecord(record.__dict__)
        copy.args = escape_args(record.args) if record.args else record.args
        try:
            message = copy.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format
            message = f"{record.msg} {record.args}"
        copy.msg, copy.args = _escape_controls(message), None
        text = super().format(copy)
        return text.replace("\n", "\n" + CONTINUATION)


def configure(level: str = "INFO") -> None:
    """Log to stderr, one line a record, every field escaped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True
    )
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)


class AccessLogger(AbstractAccessLogger):
    """One line a request: address, method, quoted path without the query, status, duration.

    The query is left out (it can carry OIDC codes). The path is the decoded one, so it can
    hold anything; the formatter escapes it (see the module docstring).
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write the line."""
        self.logger.info(
            '%s %s "%s" %d %.1fms',
            request.remote,
            request.method,
            request.path,
            response.status,
            time * 1000,
        )
