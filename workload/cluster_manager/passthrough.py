"""Which LXD calls the raw pass-through (``/1.0/remote-cluster/{name}/lxd/{path}``) lets by.

A rule is ``"METHOD PATH"``: METHOD one of GET, POST, PUT, PATCH, DELETE or ``*``; PATH starts
with ``/1.0``, a ``*`` segment matches any one segment, and a final ``/**`` matches the path
and anything below it. Without ``/**`` the path must match exactly (the query string is not
looked at). The built-in rules allow reading the inventory (not files, consoles, exec or
exports) and the state changes the Management API offers; ``lxd_passthrough_allow_extra``
adds rules.
"""

from __future__ import annotations

import re

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_RULES = (
    "GET /1.0",
    "GET /1.0/instances",
    "GET /1.0/instances/*",
    "GET /1.0/instances/*/state",
    "GET /1.0/instances/*/snapshots",
    "GET /1.0/instances/*/snapshots/*",
    "GET /1.0/cluster/**",
    "GET /1.0/warnings/**",
    "GET /1.0/operations/**",
    "GET /1.0/networks/**",
    "GET /1.0/storage-pools/**",
    "GET /1.0/projects/**",
    "GET /1.0/profiles/**",
    "GET /1.0/resources",
    "PUT /1.0/instances/*/state",
    "POST /1.0/cluster/members/*/state",
)
_RULE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|\*) (/1\.0(/[^/\s?#]+)*)$")


class Rule:
    """One parsed rule."""

    def __init__(self, text: str) -> None:
        match = _RULE.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text[:80]!r} is not 'METHOD /1.0/path' (see passthrough rules)")
        self.method = match.group(1)
        segments = match.group(2).split("/")[1:]
        self.below = segments[-1] == "**"
        self.segments = segments[:-1] if self.below else segments
        if "**" in self.segments:
            raise ValueError(f"{text[:80]!r}: '**' may only end a rule")

    def allows(self, method: str, segments: list[str]) -> bool:
        """Whether the rule lets ``method`` on the path's segments by."""
        if self.method not in ("*", method):
            return False
        if len(segments) < len(self.segments) or (
            not self.below and len(segments) != len(self.segments)
        ):
            return False
        return all(r in ("*", s) for r, s in zip(self.segments, segments, strict=False))


def parse_rules(texts: tuple[str, ...]) -> tuple[Rule, ...]:
    """Rules from their text; raises ValueError naming a bad one."""
    return tuple(Rule(t) for t in texts)


def allowed(rules: tuple[Rule, ...], method: str, path: str) -> bool:
    """Whether a call (path without its query string, already normalised) may go through."""
    segments = path.split("?", 1)[0].split("/")[1:]
    if any(s in ("", ".", "..") for s in segments):
        return False
    return any(rule.allows(method, segments) for rule in rules)


def rules_for(extra: tuple[str, ...]) -> tuple[Rule, ...]:
    """The built-in rules and the operator's extra ones."""
    return parse_rules(DEFAULT_RULES + tuple(extra))
