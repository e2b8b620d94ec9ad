"""pollama.store."""
