"""pollama.api."""
