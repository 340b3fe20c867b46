"""One short spec for every backend: :func:`load_backend`.

It is the one module that knows all three backends; they know only :mod:`.interface`
(and the served one :mod:`.api`'s HTTP client), so the imports go one way.
"""

from __future__ import annotations

from .interface import LLMBackend

__all__ = ["load_backend", "SERVED_PREFIX", "OPENAI_PREFIX"]

OPENAI_PREFIX = "openai"  #: ``"openai"`` or ``"openai:<model>"``: chat completions (list-wise answers)
SERVED_PREFIX = "served:"  #: ``"served:<model>"``: ``/v1/completions`` with echoed log-probabilities


def load_backend(model: str | None = None, **kwargs) -> LLMBackend:
    """A backend from a short spec.

    ``None`` or ``"smollm2-135m-instruct-gguf"``: the pinned offline model; ``"gemma3-270m-gguf"``:
    the second pinned size (Gemma 3 270M, base);
    ``"openai"`` or ``"openai:<model>"``: :class:`~recnotes.models.llm.api.OpenAIBackend`
    (chat completions, list-wise ranking only);
    ``"served:<model>"``: :class:`~recnotes.models.llm.served.CompletionsBackend`, the model
    served by vLLM or SGLang and scored by likelihood (both from ``OPENAI_BASE_URL`` and
    ``OPENAI_API_KEY``); anything else: a Hugging Face model id or a local folder for
    :class:`~recnotes.models.llm.backends.HFBackend`.
    """
    spec = None if model is None else str(model)
    if spec is not None and (spec == OPENAI_PREFIX or spec.startswith(OPENAI_PREFIX + ":")):
        from .api import OpenAIBackend

        name = spec.split(":", 1)[1] if ":" in spec else None
        return OpenAIBackend.from_env(model=name, **kwargs)
    if spec is not None and spec.startswith(SERVED_PREFIX):
        from .served import CompletionsBackend

        return CompletionsBackend.from_env(model=spec[len(SERVED_PREFIX):], **kwargs)
    from .backends import HFBackend

    return HFBackend.from_pretrained(model, **kwargs)
