"""Bad input on every operation of the generated OpenAPI document: 4xx with a JSON body naming
the field, never a 500.

Every POST/PUT/PATCH operation gets malformed JSON, a body that is not an
object, an unknown field and, field by field, a value of the wrong type (for
each variant of a body that is one of several, with its tag), and a body over
the 1 MiB limit (413). Every operation gets its numeric and enumerated query
parameters wrong, and absurd path parameters. The walk reads
``/api/docs/openapi.json``, so routes added later are checked too. The
caller is an admin, so that no guard answers before the input is read.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.gateway.conftest import Gateway
from tests.gateway.test_openapi_walk import PUBLIC, operations

UNKNOWN = "zzz_unknown_field"
JSON = {"content-type": "application/json"}


def resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$ref`` followed."""
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_variants(operation: dict[str, Any], doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a request body may be (the variants of a ``oneOf``; not null)."""
    schema = resolve(operation["requestBody"]["content"]["application/json"]["schema"], doc)
    options = schema.get("oneOf", [schema])
    out = [resolve(o, doc) for o in options]
    return [o for o in out if o.get("type") == "object" and "properties" in o]


def types_of(schema: dict[str, Any]) -> set[str]:
    """The JSON types a property schema allows."""
    if "oneOf" in schema or "anyOf" in schema:
        return {t for s in schema.get("oneOf", schema.get("anyOf", [])) for t in types_of(s)}
    if "$ref" in schema:
        return {"object"}
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(kind)
    return {kind} if kind else set()


def wrong_value(schema: dict[str, Any]) -> Any:
    """A value of a type ``schema`` does not allow, or None if it allows anything."""
    allowed = types_of(schema)
    if not allowed:
        return None
    return 7 if "array" in allowed else [1, 2]


def tag_of(variant: dict[str, Any]) -> dict[str, Any]:
    """The tag field of a variant of a tagged union (``{"type": "place"}``), or nothing."""
    return {name: prop["const"] for name, prop in variant["properties"].items() if "const" in prop}


def path_of(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, template)


def assert_names(
    answer: httpx.Response, field: str | None, where: object, among_details: bool = False
) -> None:
    """A 4xx JSON error naming ``field`` (first, or ``among_details`` of several)."""
    assert 400 <= answer.status_code < 500, (where, answer.status_code, answer.text)
    body = answer.json()
    assert body["error"] and body["message"], (where, body)
    if field is not None and among_details:
        assert field in {d["field"] for d in body["details"]}, (where, body)
    elif field is not None:
        assert body["field"] == field, (where, body)


async def test_every_body_rejects_bad_json_types_and_unknown_fields(gateway: Gateway) -> None:
    admin = gateway.admin
    assert admin is not None
    doc = (await admin.get("/api/docs/openapi.json")).json()
    checked = 0
    for method, template, operation in operations(doc):
        if "requestBody" not in operation:
            continue
        path = path_of(template, "nothing-here")
        http = gateway.client() if (method, template) in PUBLIC else admin.http
        where: tuple[str, ...] = (method, template)
        for raw in (b'{"a": ', b"\xff\xfe", b"[1, 2]", b'"text"', b"12"):
            answer = await http.request(method, path, content=raw, headers=JSON)
            assert_names(answer, None, (*where, raw))
            assert answer.json()["error"] == "invalid_request", (where, raw, answer.text)
        huge = b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'
        answer = await http.request(method, path, content=huge, headers=JSON)
        assert answer.status_code == 413, (where, answer.text)
        assert answer.json()["error"] == "body_too_large"
        for variant in body_variants(operation, doc):
            tag = tag_of(variant)
            answer = await http.request(method, path, json={**tag, UNKNOWN: 1})
            assert_names(answer, UNKNOWN, (*where, variant.get("title"), "unknown"))
            for name, prop in variant["properties"].items():
                if name in tag:
                    continue
                value = wrong_value(prop)
                if value is None:
                    continue
                answer = await http.request(method, path, json={**tag, name: value})
                assert_names(answer, name, (*where, variant.get("title"), name, value))
                checked += 1
    assert checked >= 30, f"only {checked} fields checked"


async def test_bad_query_and_path_parameters_are_4xx(gateway: Gateway) -> None:
    admin = gateway.admin
    assert admin is not None
    doc = (await admin.get("/api/docs/openapi.json")).json()
    checked = 0
    failures: list[tuple[str, str, str, int]] = []
    for method, template, operation in operations(doc):
        if template.startswith("/api/docs") or (method, template) in PUBLIC:
            continue
        path = path_of(template, "nothing-here")
        body: dict[str, Any] | None = {} if "requestBody" in operation else None
        for param in operation.get("parameters", []):
            if param["in"] != "query":
                continue
            schema = param.get("schema", {})
            kinds = types_of(schema)
            enum = schema.get("enum") or [
                v for s in schema.get("oneOf", []) for v in s.get("enum", [])
            ]
            if kinds & {"integer", "number"}:
                bad = "not-a-number"
            elif enum:
                bad = "not-one-of-them"
            else:
                continue
            answer = await admin.http.request(method, path, params={param["name"]: bad}, json=body)
            where = (method, template, param["name"])
            assert_names(answer, param["name"], where, among_details=body is not None)
            checked += 1
        if "{" in template:
            for value in ("a" * 300, "%00", "..%2F..", "%F0%9F%98%80", "a.b*>"):
                answer = await admin.http.request(method, path_of(template, value), json=body)
                if not 400 <= answer.status_code < 500 or not answer.json().get("error"):
                    failures.append((method, template, value, answer.status_code))
                checked += 1
    assert not failures, f"bad path parameters not answered 4xx: {failures}"
    assert checked >= 20, f"only {checked} parameters checked"
