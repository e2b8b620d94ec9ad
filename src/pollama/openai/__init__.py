"""pollama.openai."""
