"""Field validators: each refusal is a BadRequest that names the field."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from typing import Any

from cluster_manager.errors import BadRequest

NAME_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})")
INT64_MAX = 2**63 - 1
_DURATION = re.compile(r"([0-9]{1,9})([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_json_object(body: bytes, what: str = "body") -> dict[str, Any]:
    """Parse a JSON object, or refuse with 400."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(f"{what} is not valid JSON") from None
    except RecursionError:
        # The decoder refuses nesting deeper than the interpreter's recursion limit (about a
        # thousand levels) in linear time; no payload of this service nests more than a few.
        raise BadRequest(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def cluster_name(value: Any, field: str = "cluster_name") -> str:
    """A cluster name: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise BadRequest(
            f"{field} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def text(value: Any, field: str, max_length: int, *, default: str | None = None) -> str:
    """A string of bounded length; ``None`` becomes ``default`` when one is given."""
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        raise BadRequest(f"{field} must be a string")
    if len(value) > max_length:
        raise BadRequest(f"{field} must be at most {max_length} characters")
    if "\x00" in value:
        raise BadRequest(f"{field} must not contain NUL characters")
    return value


def integer(value: Any, field: str, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer (not a boolean, not a float) within bounds."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{field} must be an integer")
    if not minimum <= value <= maximum:
        raise BadRequest(f"{field} must be between {minimum} and {maximum}")
    return value


def decimal_string(value: Any, field: str, maximum: float = 1e9) -> float:
    """A non-negative number sent as a string, such as a load average ("0.42")."""
    if isinstance(value, str) and len(value) <= 32:
        try:
            number = float(value)
        except ValueError:
            raise BadRequest(f"{field} must be a decimal number") from None
    else:
        raise BadRequest(f"{field} must be a decimal number in a string")
    if not math.isfinite(number) or not 0 <= number <= maximum:
        raise BadRequest(f"{field} must be between 0 and {maximum:g}")
    return number


def duration(value: Any, field: str = "expires_in") -> timedelta:
    """A duration such as 3600, "90s", "30m", "12h", "7d" or "2w"; between 1 minute and 1 year."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise BadRequest(f"{field} must be a duration such as 30m, 12h or 7d")
    if not 60 <= seconds <= 366 * 86400:
        raise BadRequest(f"{field} must be between 1 minute and 1 year")
    return timedelta(seconds=seconds)
