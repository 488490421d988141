"""JSON Schemas of our YAML files, for editors (the shared part of ``flow_schema.py`` and
``strategies/schema.py``).

An editor with the YAML language server (VS Code's YAML extension, Neovim's yamlls...) reads the
first line of a file, ``# yaml-language-server: $schema=<path>``, and then completes field names
and flags unknown fields and wrong types as one types. The schemas are generated from the pydantic
models (``mode="validation"``: the file's own form, aliases such as ``else`` and ``in``) and a
copy of each is committed beside the files it describes; a unit test keeps the copy equal to what
the generator writes now. The loaders stay the judges: a schema says less than they check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["DIALECT", "MODELINE", "finish", "if_then_unions", "modeline", "schema_text",
           "write_schema"]

#: the JSON Schema dialect pydantic writes
DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: how a YAML file names its schema (the YAML language server's modeline)
MODELINE = "# yaml-language-server: $schema="


def finish(schema: dict[str, Any], *, title: str, description: str) -> dict[str, Any]:
    """``schema`` with the dialect, a title and a description first (what an editor shows)."""
    rest = {k: v for k, v in schema.items() if k not in ("title", "description")}
    return {"$schema": DIALECT, "title": title, "description": description, **rest}


def if_then_unions(schema: Any) -> Any:
    """``schema`` with pydantic's discriminated unions (``oneOf`` plus OpenAPI's
    ``discriminator``, which JSON Schema validators and editors ignore) as one ``if``/``then``
    per tag: a wrong field in a ``menu`` node is then reported against the menu's schema,
    not as "valid under none of thirteen", and an unknown tag as not one of the tags."""
    if isinstance(schema, list):
        return [if_then_unions(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: if_then_unions(value) for key, value in schema.items()}
    found = out.get("discriminator")
    if isinstance(found, dict) and "oneOf" in out:
        tag: str = found["propertyName"]
        mapping: dict[str, str] = found["mapping"]
        del out["discriminator"], out["oneOf"]
        out.update({
            "type": "object",
            "required": [tag],
            "properties": {tag: {"enum": list(mapping)}},
            "allOf": [{"if": {"required": [tag], "properties": {tag: {"const": value}}},
                       "then": {"$ref": ref}} for value, ref in mapping.items()]})
    return out


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as the committed file holds it: stable, readable JSON."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def modeline(schema_path: str) -> str:
    """The first line of a YAML file described by the schema at ``schema_path`` (relative to
    the file)."""
    return f"{MODELINE}{schema_path}"


def write_schema(text: str, output: str | None) -> int:
    """Print ``text``, or write it to the file ``output``; the CLI's exit status."""
    if output is None:
        sys.stdout.write(text)
        return 0
    Path(output).write_text(text, encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return 0
