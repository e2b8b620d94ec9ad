"""pollama: a local LLM runtime that speaks Ollama's wire protocol."""

__version__ = "0.1.0"
# The Ollama API version pollama reports on /api/version. Clients (Open WebUI, the official
# libraries) gate features on it, so it names the Ollama release whose wire format we follow.
OLLAMA_COMPAT_VERSION = "0.13.5"
