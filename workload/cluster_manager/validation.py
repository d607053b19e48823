"""The one hand-written check left: a duration as people type it (declared models do the rest)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from cluster_manager.errors import BadRequest

_DURATION = re.compile(r"([0-9]{1,9})([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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
