#!/usr/bin/env python3
"""Generates the NexusRAG Python SDK (nexusrag/_generated.py) from the gateway's OpenAPI document.

    python3 sdk/python/generate.py [--doc sdk/openapi.json] [--out sdk/python]

Standard library only, like the SDK. Every schema of components/schemas becomes a TypedDict
(total=False: proto3 JSON leaves out default values), every operation a method of Client named
after its operationId's method part (the service's name is prepended where two services share
a method name). --out writes under another directory: the drift check in `make test` compares
the output with the committed files.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMAS = "#/components/schemas/"
WRITES = {"post", "put", "patch", "delete"}


def snake(name: str) -> str:
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    return s + "_" if keyword.iskeyword(s) else s


def py_type(schema: dict | None, quote: bool = False) -> str:
    """The Python annotation of a schema; names of components are quoted when quote is set."""
    if not schema:
        return "Any"
    if "$ref" in schema:
        name = schema["$ref"].removeprefix(SCHEMAS)
        return repr(name) if quote else name
    t = schema.get("type")
    if t == "array":
        return f"list[{py_type(schema.get('items'), quote)}]"
    if t == "object" or "properties" in schema:
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and not schema.get("properties"):
            return f"dict[str, {py_type(extra, quote)}]"
        return "dict[str, Any]"
    if t == "string":
        return "bytes" if schema.get("format") == "binary" else "str"  # int64 is a string in proto3 JSON
    return {"integer": "int", "number": "float", "boolean": "bool"}.get(t, "Any")


def docstring(text: str, indent: str) -> str:
    text = (text or "").strip().replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    if not text:
        return ""
    lines = text.splitlines()
    body = "\n".join((indent + line.rstrip()) if line.strip() else "" for line in lines)
    return f'{indent}"""{body.lstrip()}\n{indent}"""\n' if len(lines) > 1 else f'{indent}"""{text}"""\n'


def typed_dict(name: str, schema: dict) -> str:
    props = schema.get("properties") or {}
    if not props or not all(p.isidentifier() and not keyword.iskeyword(p) for p in props):
        fields = ", ".join(f"{json.dumps(p)}: {py_type(s, quote=True)}" for p, s in sorted(props.items()))
        return f"{name} = TypedDict({name!r}, {{{fields}}}, total=False)\n"
    out = f"class {name}(TypedDict, total=False):\n" + docstring(schema.get("description", ""), "    ")
    for prop, s in sorted(props.items()):
        out += f"    {prop}: {py_type(s)}\n"
        if s.get("description"):
            out += docstring(s["description"], "    ")
    return out


def success(op: dict) -> tuple[str, dict | None]:
    """The content type and schema of an operation's success."""
    for status in sorted(op.get("responses", {})):
        if status.startswith("2"):
            content = op["responses"][status].get("content") or {}
            for ct, media in sorted(content.items()):
                return ct, media.get("schema")
            return "", None
    return "", None


def return_type(ct: str, schema: dict | None) -> tuple[str, str]:
    """The annotation of a method's answer and how the runtime reads it (json, bytes, stream)."""
    if ct == "text/event-stream":
        return "Iterator[Event]", "stream"
    if ct and ct != "application/json":
        return "bytes", "bytes"
    if schema and set(schema.get("properties", {})) == {"data", "meta"}:
        return f"Envelope[{py_type(schema['properties']['data'])}]", "json"
    return "Any", "json"


def method(name: str, route: str, verb: str, op: dict) -> str:
    params = op.get("parameters", [])
    path_params = [p for p in params if p["in"] == "path"]
    query_params = [p for p in params if p["in"] == "query"]
    ct, schema = success(op)
    ret, kind = return_type(ct, schema)
    args = ["self"] + [f"{snake(p['name'])}: str" for p in path_params]
    call = [repr(verb.upper()), repr(route)]
    if path_params:
        call.append("path={" + ", ".join(f"{p['name']!r}: {snake(p['name'])}" for p in path_params) + "}")
    body = op.get("requestBody", {}).get("content", {})
    kw: list[str] = []
    if "application/json" in body:
        args.append(f"body: {py_type(body['application/json'].get('schema'))}")
        call.append("body=body")
    elif "multipart/form-data" in body:
        form = body["multipart/form-data"]["schema"]
        required = set(form.get("required", []))
        fields = sorted(form.get("properties", {}).items(), key=lambda kv: (kv[0] not in required, kv[0]))
        for field, s in fields:
            t = "FileField" if s.get("format") == "binary" else py_type(s)
            kw.append(f"{snake(field)}: {t}" if field in required else f"{snake(field)}: {t} | None = None")
        call.append("form={" + ", ".join(f"{f!r}: {snake(f)}" for f, _ in fields) + "}")
    for p in query_params:
        kw.append(f"{snake(p['name'])}: {py_type(p.get('schema'))} | None = None")
    if query_params:
        call.append("query={" + ", ".join(f"{p['name']!r}: {snake(p['name'])}" for p in query_params) + "}")
    if verb in WRITES and kind != "stream":  # a stream is not replayed: Idempotency-Key does not apply
        kw.append("idempotency_key: str | None = None")
        call.append("idempotency_key=idempotency_key")
    if kind == "stream":
        kw.append("last_event_id: str | None = None")
        kw.append("reconnects: int = 3")
        call.append("last_event_id=last_event_id")
        call.append("reconnects=reconnects")
    if kw:
        args += ["*"] + kw
    call.append(f"read={kind!r}")
    doc = "\n\n".join(x for x in [op.get("summary", ""), op.get("description", ""), f"{verb.upper()} {route}"] if x)
    if op.get("security") == []:
        doc += " (public)"
    out = f"    def {name}({', '.join(args)}) -> {ret}:\n" + docstring(doc, "        ")
    return out + f"        return self._call({', '.join(call)})\n"


def generate(doc: dict) -> str:
    release = doc["info"]["version"]
    out = [
        f"# Code generated by sdk/python/generate.py from the NexusRAG OpenAPI document {release}. DO NOT EDIT.",
        '"""The schemas and operations of the NexusRAG REST API: TypedDicts and the Client."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Iterator, Literal, TypedDict",
        "",
        "from ._runtime import BaseClient, Envelope, Event, FileField",
        "",
        f"API_VERSION = {release!r}",
        '"""The release of the API this SDK was generated from."""',
        "",
    ]
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        out += ["", typed_dict(name, schema)]
    ops = []
    for route, item in doc["paths"].items():
        for verb, op in item.items():
            if verb in {"get", "put", "post", "delete", "patch"}:
                service, _, short = op["operationId"].rpartition("_")
                ops.append((snake(short), snake(service.removesuffix("Service")), route, verb, op))
    taken: dict[str, int] = {}
    for short, *_ in ops:
        taken[short] = taken.get(short, 0) + 1
    ops = sorted(((f"{svc}_{short}" if taken[short] > 1 else short), route, verb, op) for short, svc, route, verb, op in ops)
    for route, item in sorted(doc["paths"].items()):
        for verb, op in item.items():
            kinds = op.get("x-nexusrag-sse-events")
            if kinds:
                short = op["operationId"].rpartition("_")[2]
                names = ", ".join(repr(k["event"]) for k in kinds)
                out += ["", f"{short}EventType = Literal[{names}]", f'"""The kinds of event of {verb.upper()} {route}."""']
                pairs = ", ".join(f"{k['event']!r}: {k['data'].removeprefix(SCHEMAS)!r}" for k in kinds)
                out += [f"{snake(short).upper()}_EVENT_DATA = {{{pairs}}}", '"""The schema of each kind\'s data, by event name."""', ""]
    out += ["", "class Client(BaseClient):", '    """Every route of the API, one method each; errors raise ApiError."""', ""]
    out += [method(name, route, verb, op) for name, route, verb, op in ops]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--doc", default=str(HERE.parent / "openapi.json"))
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args()
    doc = json.loads(Path(args.doc).read_text())
    out = Path(args.out)
    (out / "nexusrag").mkdir(parents=True, exist_ok=True)
    (out / "nexusrag" / "_generated.py").write_text(generate(doc))
    pyproject = (HERE / "pyproject.toml").read_text()
    (out / "pyproject.toml").write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{doc["info"]["version"]}"', pyproject, count=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
