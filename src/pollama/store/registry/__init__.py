"""The registry client: pull and push over Ollama's registry protocol, and Hugging Face pulls.

``pull_model`` and ``push_model`` are async generators of Ollama's progress dicts; the engine
streams them to ``/api/pull`` and ``/api/push``. Modules: ``client`` (auth, redirects, bounded
reads), ``download`` (resumable verified parts), ``pull``, ``push``, ``hf`` (the Hub's HTTP API).
"""

from pollama.store.registry.pull import pull_model
from pollama.store.registry.push import push_model

__all__ = ["pull_model", "push_model"]
