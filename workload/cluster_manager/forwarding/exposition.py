"""Prometheus text exposition format (what LXD's /1.0/metrics returns), read in linear time.

prometheus_client's parser is ten times slower on LXD's output and gives up on a whole family at
its first bad line; this reader handles one line at a time, so a bad line is skipped and counted
and every other sample is kept. Comment lines (HELP, TYPE) carry nothing remote write needs and
are skipped. Timestamps on sample lines are checked but not used: every sample of a heartbeat
gets the time the heartbeat was accepted.

Every step is linear in the length of the line: the line is cut at known characters (``}``, the
last space), and the regular expressions used on the pieces have no two ways to match the same
text, so a failing match gives up after one pass. A line is the series' *head* (name and labels)
followed by its value: :func:`read_line` checks a whole line and says where its head ends, so
:mod:`cluster_manager.forwarding.series` can remember the heads it has checked and then read
only the values.
"""

from __future__ import annotations

import dataclasses
import math
import re

Labels = tuple[tuple[str, str], ...]

# The head: name, then optionally {labels}. Space and tab only, as Prometheus.
_NAME = re.compile(r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]*")
# One label pair from a position; the unrolled quoted string cannot backtrack into itself.
_PAIR = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"([^"\\]*(?:\\.[^"\\]*)*)"[ \t]*')
# After the head: at least one blank, the value, an optional timestamp.
_TAIL = re.compile(r"[ \t]+([^ \t]+)(?:[ \t]+([^ \t]+))?[ \t]*")
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_TIMESTAMP = re.compile(r"-?[0-9]+")
SPECIAL_VALUES = {"+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf, "NaN": math.nan}


class BadLine(ValueError):
    """A line that is not a valid sample."""


@dataclasses.dataclass(frozen=True)
class Line:
    """One valid sample line.

    ``head_end`` is where the head (name and labels) ends; ``plain`` says that the rest of the
    line is exactly one space and the value, the common case whose head is worth remembering.
    """

    name: str
    labels: Labels
    value: float
    head_end: int
    plain: bool


@dataclasses.dataclass
class ParsedMetrics:
    """The samples of one text: (name, labels in the line's order without empty values, value).

    A series written twice appears twice; whoever builds series keeps the last.
    """

    samples: list[tuple[str, Labels, float]]
    bad_lines: int


def _unescape(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        try:
            return _ESCAPES[match.group(1)]
        except KeyError:
            raise BadLine from None

    return _ESCAPE.sub(replace, value)


def _labels(text: str) -> Labels:
    """``a="1",b="2"`` (a trailing comma allowed) into pairs; empty values left out."""
    pairs: list[tuple[str, str]] = []
    pos, end = 0, len(text)
    match_pair = _PAIR.match
    while pos < end:
        match = match_pair(text, pos)
        if match is None:
            raise BadLine
        name, value = match.groups()
        if "\\" in value:
            value = _unescape(value)
        pairs.append((name, value))
        pos = match.end()
        if pos < end:
            if text[pos] != ",":
                raise BadLine
            pos += 1
    names = {name for name, _ in pairs}
    if len(names) != len(pairs) or "__name__" in names:
        raise BadLine
    return tuple(pair for pair in pairs if pair[1])  # an empty value means "no such label"


def value_of(text: str) -> float:
    """A sample value as Prometheus writes it (no ``1_0``, ``inf`` or ``nan`` spellings)."""
    special = SPECIAL_VALUES.get(text)
    if special is not None:
        return special
    if "_" in text or not (text[0].isdigit() or text[0] in "+-."):
        raise BadLine  # float() would take "1_0", "inf" or "nan", Prometheus does not
    try:
        return float(text)
    except ValueError:
        raise BadLine from None


def read_line(line: str) -> Line | None:
    """Check one line (without its newline or carriage return); ``None`` for a comment.

    Raises:
        BadLine: the line is not a valid sample.
    """
    if line.lstrip()[:1] == "#" or not line.strip():
        return None
    name_match = _NAME.match(line)
    if name_match is None:
        raise BadLine
    name = name_match.group(1)
    head_end = name_match.end(1)
    labels: Labels = ()
    if name_match.end() < len(line) and line[name_match.end()] == "{":
        close = line.rfind("}")  # a value or timestamp never holds "}"; a label value may
        if close < name_match.end():
            raise BadLine
        labels = _labels(line[name_match.end() + 1 : close])
        head_end = close + 1
    tail = _TAIL.fullmatch(line, head_end)
    if tail is None:
        raise BadLine
    value_text, timestamp = tail.groups()
    value = value_of(value_text)
    if timestamp is not None and _TIMESTAMP.fullmatch(timestamp) is None:
        raise BadLine
    plain = (
        timestamp is None
        and line[head_end] == " "
        and tail.start(1) == head_end + 1
        and tail.end(1) == len(line)
    )
    return Line(name, labels, value, head_end, plain)


def parse_metrics(text: str) -> ParsedMetrics:
    """Read every sample line of ``text``; lines that are not valid are skipped and counted."""
    samples: list[tuple[str, Labels, float]] = []
    bad = 0
    for line in text.split("\n"):
        if not line or line[0] == "#":
            continue
        if line[-1] == "\r":
            line = line[:-1]
        try:
            read = read_line(line)
        except BadLine:
            bad += 1
            continue
        if read is not None:
            samples.append((read.name, read.labels, read.value))
    return ParsedMetrics(samples, bad)
