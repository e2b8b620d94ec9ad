"""pollama.testing."""
