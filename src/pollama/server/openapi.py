"""The published OpenAPI document: request bodies declared from the wire models.

Handlers read their bodies themselves (so a bad body gets Ollama's Go-style message, or the
compatibility API's own envelope, instead of FastAPI's 422). :func:`body_doc` still declares each
body in the document, from the same pydantic model the handler validates with, so
``/openapi.json`` is useful to clients and to schema-driven testing.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

REF = "#/components/schemas/{model}"


def body_doc(model: type[BaseModel], registry: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON body of ``model``; its schemas go to ``registry``."""
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    for name, sub in schema.pop("$defs", {}).items():
        registry[name] = sub
    registry[model.__name__] = schema
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": REF.format(model=model.__name__)}}}}}


def install_schemas(app: FastAPI, registry: dict[str, Any]) -> None:
    """Merge the declared body schemas into the generated document's components."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = base()
        doc.setdefault("components", {}).setdefault("schemas", {}).update(registry)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
