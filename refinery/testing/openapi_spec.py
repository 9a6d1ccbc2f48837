"""Validate request bodies against OpenAI's published OpenAPI document.

Why: no machine here can reach OpenAI, so the official spec is the only ground truth for "the
API would accept this body". The spec's schemas do not forbid unknown parameters while the API
rejects them, so the places a hand-built body goes wrong are also checked for unknown keys.
`oneOf` is read as `anyOf`, as OpenAPI tooling does (several alternatives overlap).

The spec is not shipped with refinery: point `REFINERY_OPENAI_SPEC` at `openapi.json`, pass a
path, or keep the `shared/` folder beside the checkout (`../shared/openai-spec/openapi.json`, or
wherever `REFINERY_SHARED` points) — the same rule that finds the rest of `../shared`.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from pathlib import Path
from typing import Any

SPEC_ENV = "REFINERY_OPENAI_SPEC"


SHARED_ENV = "REFINERY_SHARED"


def find_shared(start: Path | None = None) -> Path | None:
    """The `shared/` folder: `$REFINERY_SHARED`, else `../shared` beside the repository that
    holds `start` (default: this package's checkout). One rule for the spec, the eval data and
    every other shared file, as the README says."""
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = (start or Path(__file__)).resolve()
    for parent in [here, *here.parents]:
        if (parent / "pyproject.toml").is_file():  # the repository root
            candidate = parent.parent / "shared"
            return candidate if candidate.is_dir() else None
    return None


def find_spec(start: Path | None = None) -> Path | None:
    """`openapi.json` from `$REFINERY_OPENAI_SPEC`, else `openai-spec/openapi.json` in `find_shared()`."""
    env = os.environ.get(SPEC_ENV)
    if env and Path(env).is_file():
        return Path(env)
    shared = find_shared(start)
    candidate = shared / "openai-spec" / "openapi.json" if shared else None
    return candidate if candidate and candidate.is_file() else None


def _one_of_as_any_of(node: Any) -> Any:
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _one_of_as_any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_one_of_as_any_of(v) for v in node]
    return node


class OpenAPISpec:
    """One loaded spec; validators are built once per component schema."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._validators: dict[str, Any] = {}

    @cached_property
    def document(self) -> dict[str, Any]:
        return _one_of_as_any_of(json.loads(self.path.read_text(encoding="utf-8")))

    @property
    def schemas(self) -> dict[str, Any]:
        return self.document["components"]["schemas"]

    def _validator(self, name: str) -> Any:
        if name not in self._validators:
            from jsonschema import Draft202012Validator
            from referencing import Registry, Resource

            registry = Registry().with_resource("", Resource.opaque(self.document))
            doc = dict(self.document)
            doc["$ref"] = f"#/components/schemas/{name}"
            self._validators[name] = Draft202012Validator(doc, registry=registry)
        return self._validators[name]

    def declared(self, name: str) -> set[str]:
        """Every property a component schema declares, through `$ref` and `allOf`/`anyOf`."""
        seen: set[str] = set()
        names: set[str] = set()

        def walk(node: Any) -> None:
            if not isinstance(node, dict):
                return
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                key = ref.rsplit("/", 1)[-1]
                if key not in seen:
                    seen.add(key)
                    walk(self.schemas[key])
                return
            names.update(node.get("properties", {}))
            for k in ("allOf", "anyOf"):
                for sub in node.get(k, []):
                    walk(sub)

        walk(self.schemas[name])
        return names

    def unknown_parameters(self, body: dict[str, Any]) -> list[str]:
        """Keys the API would reject as unknown, at the places a hand-built body goes wrong."""
        out: list[str] = []

        def check(node: Any, schema: str, where: str) -> None:
            if isinstance(node, dict):
                extra = set(node) - self.declared(schema)
                if extra:
                    out.append(f"{where}: unknown parameter(s) {sorted(extra)}")

        check(body, "CreateResponse", "(root)")
        text = body.get("text")
        check(text, "ResponseTextParam", "text")
        fmt = text.get("format") if isinstance(text, dict) else None
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            check(fmt, "TextResponseFormatJsonSchema", "text/format")
        for i, tool in enumerate(body.get("tools") or []):
            if isinstance(tool, dict) and tool.get("type") == "file_search":
                check(tool, "FileSearchTool", f"tools/{i}")
        raw_items = body.get("input")
        items: list[Any] = raw_items if isinstance(raw_items, list) else []
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get("type", "message") == "message":
                extra = set(item) - self.declared("EasyInputMessage") - self.declared("InputMessage")
                if extra:
                    out.append(f"input/{i}: unknown parameter(s) {sorted(extra)}")
        return out

    def validate(self, instance: Any, schema: str = "CreateResponse") -> list[str]:
        """Every problem with `instance` against a component schema; empty when it validates."""
        problems = self.unknown_parameters(instance) if schema == "CreateResponse" else []
        errors = sorted(self._validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
        for err in errors:
            path = "/".join(str(p) for p in err.absolute_path) or "(root)"
            problems.append(f"{path}: {err.message[:300]}")
        return problems
