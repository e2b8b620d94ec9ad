"""pollama.templates."""
