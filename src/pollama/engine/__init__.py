"""The engine: composes store, scheduler, runner and templates into the API's operations."""

from pollama.engine.engine import Engine

__all__ = ["Engine"]
