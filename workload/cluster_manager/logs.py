"""Logging set-up for the command line and the servers."""

from __future__ import annotations

import logging
import sys


def configure(level: str = "INFO") -> None:
    """Log to stderr, one line a record."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
