"""pollama.engine."""
