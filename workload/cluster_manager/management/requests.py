"""Reading requests into their declared models: one call decodes and validates.

A refusal is a ``msgspec.ValidationError`` (or ``DecodeError``) naming the field; the error
middleware answers it with a 400 (see cluster_manager.fields).
"""

from __future__ import annotations

from typing import TypeVar

import msgspec
from aiohttp import web
from multidict import MultiMapping

from cluster_manager.errors import BadRequest

MAX_BODY_BYTES = 64 * 1024
Model = TypeVar("Model", bound=msgspec.Struct)


async def json_body(request: web.Request, model: type[Model]) -> Model:
    """The body as ``model``: a JSON object with only the model's fields, each valid."""
    return msgspec.json.decode(await request.read(), type=model)


def _is_list(field: msgspec.inspect.Field) -> bool:
    kind = field.type.type if isinstance(field.type, msgspec.inspect.Metadata) else field.type
    return isinstance(kind, msgspec.inspect.ListType | msgspec.inspect.VarTupleType)


def list_fields(model: type[msgspec.Struct]) -> frozenset[str]:
    """The fields of a query model given as comma-separated lists."""
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(field.encode_name for field in info.fields if _is_list(field))


def query_model(params: MultiMapping[str], model: type[Model]) -> Model:
    """The query string as ``model``: each parameter once, lists comma-separated.

    An empty list parameter means no items (the model may refuse that); an empty item
    ("warning,,stale") is refused by the item's type.
    """
    values: dict[str, object] = {}
    lists = list_fields(model)
    for key, value in params.items():
        if key in values:
            raise BadRequest(f"{key[:64]} must be given once")
        if key in lists:
            values[key] = [item.strip() for item in value.split(",")] if value else []
        else:
            values[key] = value
    return msgspec.convert(values, type=model, strict=False)
