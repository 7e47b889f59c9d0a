"""Checks recorded HTTP exchanges against the published Pelion Device Management OpenAPI files.

``specs/pelion_dm_public_openapi.yaml`` (2019-06: PelionIoT/mbed-cloud-sdk-python, commit 8e7202d) and
``specs/pelion_dm_public_openapi_2019-11.yaml`` (the newest published copy: PelionIoT/mbed-cloud-sdk-java,
commit 244f5eab) are unmodified copies of the upstream files (``/work/shared/protocols/specs/README.md``;
both Swagger 2.0, ``info.version`` "3"). The reference is the two merged, the later one winning: each
path of the 2019-11 file replaces the 2019-06 one whole (its operations, parameters and responses),
each definition likewise; what only the older file has stays (``docs/mbed.md`` lists the differences
that matter). For each exchange (``platypush_ext.sandbox.mbed.Exchange``):

* the path matches a path template of the file and the method is one of its operations;
* every query parameter is declared for the operation (``in: query``), with its type, pattern
  and bounds; every required one is present;
* a request body only where the operation declares one (``in: body``), present when required,
  with an allowed content type (``consumes``) and, for JSON, the body parameter's schema;
* the status is one the operation lists;
* each NotificationMessage the service pushes (a callback body, a WebSocket frame; recorded as
  ``MESSAGE``) matches ``NotificationMessage``;
* a success's body has a content type the operation ``produces`` (when it says), a response body
  matches the listed schema of that status (JSON), and ``204``/``205`` carry none.

The schema validator covers the subset of JSON Schema the file uses: ``$ref``, ``type``,
``properties``, ``required``, ``items``, ``enum``, ``additionalProperties``, ``pattern``,
``minimum``/``maximum``, ``maxLength``, ``minItems``, ``x-nullable``. It is *stricter* than JSON
Schema on one point, on purpose: an object property that the schema does not declare (and no
``additionalProperties`` allows) is reported, so that the sandbox cannot drift into a dialect.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

SPECS = Path(__file__).parent / "specs"
#: The files, oldest first: where they disagree, the later one wins.
SPEC_PATHS = (SPECS / "pelion_dm_public_openapi.yaml", SPECS / "pelion_dm_public_openapi_2019-11.yaml")
TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@functools.lru_cache(maxsize=None)
def load(path: Path) -> dict[str, Any]:
    """One file, as published."""
    with path.open() as f:
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The files of :data:`SPEC_PATHS` merged, a later one's paths and definitions replacing an earlier one's."""
    merged: dict[str, Any] = {"paths": {}, "definitions": {}}
    for path in SPEC_PATHS:
        published = load(path)
        merged.update({k: v for k, v in published.items() if k not in ("paths", "definitions")})
        merged["paths"].update(published["paths"])
        merged["definitions"].update(published.get("definitions", {}))
    return merged


def api_version() -> str:
    return str(spec()["info"]["version"])


@functools.lru_cache(maxsize=1)
def _templates() -> list[tuple[re.Pattern[str], str]]:
    """Path templates as regular expressions; ``{resourcePath}`` spans slashes. Most literal first."""
    compiled = []
    for template in spec()["paths"]:
        regex = ""
        for literal, name in re.findall(r"([^{]*)(?:\{([^}]+)\})?", template):
            regex += re.escape(literal) + (("(.+)" if name == "resourcePath" else "([^/]+)") if name else "")
        compiled.append((re.compile(regex + r"\Z"), template))
    return sorted(compiled, key=lambda c: -len(re.sub(r"\{[^}]+\}", "", c[1])))


def operation(method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """``(template, operation)`` of ``method path``, or ``None``."""
    for regex, template in _templates():
        if regex.match(path):
            op = spec()["paths"][template].get(method.lower())
            if op is not None:
                return template, op
    return None


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec()["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def validate(value: Any, schema: dict[str, Any], where: str = "body") -> list[str]:
    """Problems of ``value`` against ``schema`` (the file's subset of JSON Schema)."""
    schema = _resolve(schema)
    if value is None:
        return [] if schema.get("x-nullable") else [f"{where}: null is not allowed"]
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if kind is not None:
        if not isinstance(value, TYPES[kind]) or (kind in ("integer", "number") and isinstance(value, bool)):
            return [f"{where}: expected {kind}, got {type(value).__name__} {json.dumps(value)[:60]}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']!r}")
        if len(value) > schema.get("maxLength", len(value)):
            problems.append(f"{where}: longer than {schema['maxLength']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            problems.append(f"{where}: {value} is out of bounds")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            problems += validate(item, schema.get("items", {}), f"{where}[{index}]")
    if isinstance(value, dict):
        problems += _validate_object(value, schema, where)
    return problems


def _validate_object(value: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    properties, extra = schema.get("properties", {}), schema.get("additionalProperties")
    problems = [f"{where}: missing required {name!r}" for name in schema.get("required", []) if name not in value]
    for name, item in value.items():
        if name in properties:
            problems += validate(item, properties[name], f"{where}.{name}")
        elif isinstance(extra, dict):
            problems += validate(item, extra, f"{where}.{name}")
        elif extra is not True and (properties or extra is False):
            problems.append(f"{where}: undeclared property {name!r}")
    return problems


def _check_query(query: dict[str, str], params: list[dict[str, Any]]) -> list[str]:
    declared = {p["name"]: p for p in params if p.get("in") == "query"}
    problems = [f"query: undeclared parameter {name!r}" for name in query if name not in declared]
    for name, param in declared.items():
        if name not in query:
            if param.get("required"):
                problems.append(f"query: missing required {name!r}")
            continue
        text = query[name]
        if param.get("type") == "boolean" and text not in ("true", "false"):
            problems.append(f"query: {name}={text!r} is not a boolean")
        elif param.get("type") == "integer":
            if not re.fullmatch(r"-?\d+", text):
                problems.append(f"query: {name}={text!r} is not an integer")
            else:
                problems += validate(int(text), param, f"query {name}")
        elif "pattern" in param and not re.search(param["pattern"], text):
            problems.append(f"query: {name}={text!r} does not match {param['pattern']!r}")
    return problems


def _check_request_body(exchange: Any, op: dict[str, Any], params: list[dict[str, Any]]) -> list[str]:
    body_param = next((p for p in params if p.get("in") == "body"), None)
    if body_param is None:
        return ["request: a body, but the operation takes none"] if exchange.request_body else []
    if not exchange.request_body:
        return ["request: the required body is missing"] if body_param.get("required") else []
    ctype = exchange.request_type.split(";")[0].strip()
    consumes = op.get("consumes") or spec().get("consumes") or ["application/json"]
    if ctype not in consumes:
        return [f"request: content type {ctype!r} is not one of {consumes}"]
    if ctype != "application/json":
        return []
    try:
        value = json.loads(exchange.request_body)
    except ValueError:
        return ["request: the body is not JSON"]
    return validate(value, body_param.get("schema", {}), "request")


def _check_response(exchange: Any, listed: dict[str, Any], produces: list[str] | None) -> list[str]:
    if exchange.status in (204, 205):
        return [f"response: a {exchange.status} with a body"] if exchange.response_body else []
    ctype = exchange.response_type.split(";")[0].strip()
    if produces and exchange.response_body and 200 <= exchange.status < 300 and ctype not in produces:
        return [f"response: content type {ctype!r} is not one of {produces}"]
    schema = (listed or {}).get("schema")
    if schema is None or not exchange.response_body:
        return [] if schema is None else ["response: no body, but the status has a schema"]
    if "json" not in exchange.response_type:  # e.g. text/uri-list, for a schema of type string
        ok = _resolve(schema).get("type") == "string"
        return [] if ok else [f"response: {exchange.response_type!r} where the schema wants JSON"]
    try:
        value = json.loads(exchange.response_body)
    except ValueError:
        return [f"response: not JSON ({exchange.response_body[:40]!r})"]
    return validate(value, schema, "response")


def check(exchange: Any) -> list[str]:
    """Every problem of one exchange (``[]`` when it conforms)."""
    if exchange.method == "MESSAGE":  # a callback body or a WebSocket frame: a NotificationMessage
        try:
            value = json.loads(exchange.response_body)
        except ValueError:
            return [f"MESSAGE {exchange.path}: not JSON"]
        problems = validate(value, {"$ref": "#/definitions/NotificationMessage"}, "message")
        return [f"MESSAGE {exchange.path}: {p}" for p in problems]
    found = operation(exchange.method, exchange.path)
    if found is None:
        return [f"{exchange.method} {exchange.path}: no such operation in the API"]
    template, op = found
    params = spec()["paths"][template].get("parameters", []) + op.get("parameters", [])
    problems = _check_query(exchange.query, params) + _check_request_body(exchange, op, params)
    responses = {int(k): v for k, v in op.get("responses", {}).items()}
    if exchange.status not in responses:
        problems.append(f"status {exchange.status} is not listed ({sorted(responses)})")
    else:
        problems += _check_response(exchange, responses[exchange.status], op.get("produces"))
    return [f"{exchange.method} {template} -> {exchange.status}: {p}" for p in problems]


def check_all(exchanges: list[Any]) -> list[str]:
    """The problems of every exchange."""
    return [problem for exchange in exchanges for problem in check(exchange)]
