"""pollama.runner."""
