"""Field types shared by the declared models, and refusals that name the field.

Each model is a ``msgspec.Struct`` whose fields carry their constraints in the type
(``Annotated[..., msgspec.Meta(...)]``): one declaration validates a body, documents it in the
OpenAPI document (``msgspec.json.schema_components``) and serialises it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, TypeVar, cast

import msgspec

from cluster_manager.errors import BadRequest

NAME_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
NAME_PATTERN = re.compile(NAME_REGEX)
NAME_WORDS = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
NO_NUL_REGEX = r"^[^\x00]*$"
# "0.42": Go's strconv.FormatFloat(load, 'f', 2, 64) of a load average summed over members.
LOAD_REGEX = r"^[0-9]{1,10}(\.[0-9]{1,10})?$"
MAX_DESCRIPTION = 1024

Name = Annotated[str, msgspec.Meta(pattern=NAME_REGEX, description=NAME_WORDS)]
Description = Annotated[
    str,
    msgspec.Meta(max_length=MAX_DESCRIPTION, pattern=NO_NUL_REGEX, description="free text"),
]
Percent = Annotated[int, msgspec.Meta(ge=0, le=100, description="percent")]
Count = Annotated[int, msgspec.Meta(ge=0)]
Bytes = Annotated[int, msgspec.Meta(ge=0, description="bytes")]
Ratio = Annotated[float, msgspec.Meta(description="0..1")]
Timestamp = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]

# "Expected `int` >= 1 - at `$.limit`" -> ("Expected `int` >= 1", "limit")
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD_NAMED = re.compile(r"^Object (?:missing required|contains unknown) field `([^`]*)`")
_NAMES_ITS_FIELD = re.compile(r"^[a-z_][a-z0-9_]*: ")
_PATTERN_WORDS = {
    NAME_REGEX: f"expected {NAME_WORDS}",
    NO_NUL_REGEX: "must not contain NUL",
    LOAD_REGEX: 'expected a decimal number in a string, such as "0.42"',
}
_WORDS = (
    *(
        (re.compile(re.escape(f"Expected `str` matching regex {regex!r}")), words)
        for regex, words in _PATTERN_WORDS.items()
    ),
    (re.compile(r"^Object missing required field `[^`]*`"), "required"),
    (re.compile(r"^Object contains unknown field `[^`]*`"), "not a known field"),
    (re.compile(r"^JSON is malformed.*", re.DOTALL), "not valid JSON"),
    (re.compile(r"^Input data was truncated.*", re.DOTALL), "not valid JSON"),
)


def field_message(error: msgspec.DecodeError, root: str = "body") -> str:
    """A msgspec refusal in words that start with the field: ``expires_in: expected int ≥ 60``.

    ``root`` names the whole input when the refusal is about it rather than about a field.
    """
    match = _AT.match(str(error))
    what, path = (match.group("what"), match.group("path")) if match else (str(error), None)
    if path is None and _NAMES_ITS_FIELD.match(what):
        return what[:264]  # a check in __post_init__ that names its field itself
    named = _FIELD_NAMED.match(what)
    field = ".".join(p for p in (path, named.group(1) if named else None) if p) or root
    for pattern, words in _WORDS:
        if pattern.match(what):
            what = words
            break
    else:
        what = what.replace(">=", "≥").replace("<=", "≤").replace("`", "")
        what = what[:1].lower() + what[1:]
    return f"{field[:64]}: {what[:200]}"


Model = TypeVar("Model")
_DECODERS: dict[object, msgspec.json.Decoder] = {}


def decode(data: bytes | str, model: type[Model], what: str = "body") -> Model:
    """``data`` (JSON) as ``model``, validated in one call.

    A refusal is a ``msgspec.ValidationError``/``DecodeError`` (see :func:`field_message`);
    nesting deeper than the interpreter allows, even in ignored fields, is a 400 too.
    """
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = msgspec.json.Decoder(model)
    try:
        return cast(Model, decoder.decode(data))
    except RecursionError:
        raise BadRequest(f"{what} is nested too deeply") from None
