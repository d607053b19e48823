"""Prometheus text exposition format (what LXD's /1.0/metrics returns) read into samples.

prometheus_client's parser is ten times slower on LXD's output (about 120 ms for 600 KiB) and
gives up on a whole family at its first bad line; this reader handles one line at a time, so a
bad line is skipped and counted and every other sample is kept. Comment lines (HELP, TYPE) carry
nothing remote write needs and are skipped. Timestamps on sample lines are checked but not used:
every sample of a heartbeat gets the time the heartbeat was accepted.
"""

from __future__ import annotations

import dataclasses
import math
import re

Labels = tuple[tuple[str, str], ...]

# name, optional {labels}, value, optional timestamp (the label part is checked separately).
_SAMPLE = re.compile(
    r"[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)[ \t]*(?:\{(.*)\})?[ \t]*[ \t]([^ \t]+)"
    r"(?:[ \t]+([^ \t]+))?[ \t]*"
)
_PAIR = r'[ \t]*[a-zA-Z_][a-zA-Z0-9_]*[ \t]*=[ \t]*"(?:[^"\\]|\\.)*"[ \t]*'
_LABELS = re.compile(f"(?:{_PAIR},)*(?:{_PAIR})?")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_TIMESTAMP = re.compile(r"-?[0-9]+")
_SPECIAL_VALUES = {"+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf, "NaN": math.nan}


@dataclasses.dataclass
class ParsedMetrics:
    """The samples of one text: (name, labels in the line's order without empty values, value).

    A series written twice appears twice; whoever builds series keeps the last.
    """

    samples: list[tuple[str, Labels, float]]
    bad_lines: int


class _BadLine(ValueError):
    pass


def _unescape(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        try:
            return _ESCAPES[match.group(1)]
        except KeyError:
            raise _BadLine from None

    return _ESCAPE.sub(replace, value)


def _labels(text: str) -> Labels:
    if _LABELS.fullmatch(text) is None:
        raise _BadLine
    pairs = _LABEL.findall(text)
    if "\\" in text:
        pairs = [(name, _unescape(value)) for name, value in pairs]
    names = dict(pairs)
    if len(names) != len(pairs) or "__name__" in names:
        raise _BadLine
    if '""' in text:  # an empty value means "no such label" to Prometheus
        return tuple(pair for pair in pairs if pair[1])
    return tuple(pairs)


def _value(text: str) -> float:
    special = _SPECIAL_VALUES.get(text)
    if special is not None:
        return special
    if "_" in text or not (text[0].isdigit() or text[0] in "+-."):
        raise _BadLine  # float() would take "1_0", "inf" or "nan", Prometheus does not
    try:
        return float(text)
    except ValueError:
        raise _BadLine from None


def parse_metrics(text: str) -> ParsedMetrics:
    """Read every sample line of ``text``; lines that are not valid are skipped and counted."""
    samples: list[tuple[str, Labels, float]] = []
    append = samples.append
    bad = 0
    match_sample = _SAMPLE.fullmatch
    for line in text.split("\n"):
        if not line or line[0] == "#" or line.isspace():
            continue
        if line[-1] == "\r":
            line = line[:-1]
        if line.lstrip()[:1] == "#":
            continue
        match = match_sample(line)
        if match is None:
            bad += 1
            continue
        name, label_text, value_text, timestamp = match.groups()
        try:
            labels = _labels(label_text) if label_text else ()
            value = _value(value_text)
            if timestamp is not None and _TIMESTAMP.fullmatch(timestamp) is None:
                raise _BadLine
        except _BadLine:
            bad += 1
            continue
        append((name, labels, value))
    return ParsedMetrics(samples, bad)
