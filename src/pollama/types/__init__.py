"""pollama.types."""
