"""pollama.server."""
