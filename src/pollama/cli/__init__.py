"""pollama.cli."""
