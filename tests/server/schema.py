"""Requests checked against Mixpeek's published OpenAPI document.

``tasks-openapi.json`` beside this file is the tasks part of Mixpeek's
published OpenAPI document (version 0.81), as ``../shared/api/`` has it.
check_list() checks a POST /v1/tasks/list request, its query parameters
and its JSON body, against it, and raises the server's 422 for the first
thing the schema does not allow: every request the tests make is then
also a conformance test, and a drift of the daemon fails them.

A validator of the JSON Schema subset that document uses: $ref, anyOf,
type, enum, const, properties, required, items, minimum, maximum and
additionalProperties; {} allows anything. Query parameters arrive as
text and are read as FastAPI reads them: an integer's digits, a
boolean's true/false/1/0/yes/no/on/off; unknown ones are ignored, as
FastAPI ignores them.
"""

import json
import os
import re

SPEC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "tasks-openapi.json")
with open(SPEC_PATH) as _f:
    SPEC = json.load(_f)

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and
    not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def resolve(schema):
    while "$ref" in schema:
        node = SPEC
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def error(value, schema, loc):
    """(location, message) of the first thing schema does not allow in
    value, or None."""
    schema = resolve(schema)
    if "anyOf" in schema:
        errs = [error(value, s, loc) for s in schema["anyOf"]]
        if all(errs):
            # the deepest error says the most
            return max(errs, key=lambda e: len(e[0]))
    t = schema.get("type")
    if t is not None and not _TYPES[t](value):
        return loc, "should be of type %s" % t
    if "enum" in schema and value not in schema["enum"]:
        return loc, "should be one of %s" % ", ".join(
            json.dumps(e) for e in schema["enum"])
    if "const" in schema and value != schema["const"]:
        return loc, "should be %s" % json.dumps(schema["const"])
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            return loc, "should be >= %s" % schema["minimum"]
        if "maximum" in schema and value > schema["maximum"]:
            return loc, "should be <= %s" % schema["maximum"]
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                return loc + [name], "is required"
        for name, v in value.items():
            if name in props:
                e = error(v, props[name], loc + [name])
            elif schema.get("additionalProperties") is False:
                e = loc + [name], "is not allowed"
            elif isinstance(schema.get("additionalProperties"), dict):
                e = error(v, schema["additionalProperties"], loc + [name])
            else:
                e = None
            if e:
                return e
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            e = error(v, schema["items"], loc + [i])
            if e:
                return e
    return None


def _allows(schema, t):
    schema = resolve(schema)
    return schema.get("type") == t or any(
        _allows(s, t) for s in schema.get("anyOf", ()))


_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "t": True,
          "y": True, "false": False, "0": False, "no": False, "off": False,
          "f": False, "n": False}


def query_value(text, schema):
    """A query parameter's text as FastAPI reads it for schema."""
    if _allows(schema, "integer") and re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if _allows(schema, "boolean") and text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    return text


def check(method, path, params, body):
    """(location, message) of the first thing the published schema does
    not allow in this request, or None."""
    op = SPEC["paths"][path][method]
    for p in op.get("parameters", ()):
        if p["in"] != "query" or p["name"] not in params:
            continue
        v = query_value(params[p["name"]], p["schema"])
        e = error(v, p["schema"], ["query", p["name"]])
        if e:
            return e
    rb = op.get("requestBody")
    if rb and body is not None:
        return error(body, rb["content"]["application/json"]["schema"],
                     ["body"])
    return None
