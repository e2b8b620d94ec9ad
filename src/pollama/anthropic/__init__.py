"""Anthropic Messages API compatibility (``POST /v1/messages``, reference §2.17).

``schema`` holds the request model; ``translate`` holds the pure conversions to and from the
native ``/api/chat`` shapes, the streaming event translator and the error envelope.
"""
