"""OpenAI compatibility (reference §2.16): pure translations in front of the native API.

* ``schema``    – pydantic request models and :func:`~pollama.openai.schema.parse_request`.
* ``translate`` – chat completions, completions, embeddings, models, errors, SSE framing.
* ``responses`` – the stateless Responses API (``/v1/responses``).
* ``wire``      – small shared helpers (SSE framing, timestamps, data URLs).

The Anthropic Messages API lives in :mod:`pollama.anthropic`.
"""
