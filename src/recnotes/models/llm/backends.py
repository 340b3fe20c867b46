"""The local backend, :class:`HFBackend`: a Hugging Face causal LM run with PyTorch.

Offline default: the pinned SmolLM2-135M-Instruct GGUF asset; online (Colab) any model
id or a local folder.  On CUDA it runs in bf16.  It can both generate and score
continuations by log-likelihood (:mod:`.likelihood`).  The interface it implements,
:class:`~recnotes.models.llm.interface.LLMBackend`, and its usage counters live in
:mod:`.interface`; the servers' backends are in :mod:`.api` (chat) and :mod:`.served`
(likelihood through ``/v1/completions``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ... import assets
from ...device import get_device, inference_dtype
from ...progress import hf_progress
from .interface import Completion, LLMBackend, LLMBackendError, Message, Prompt, check_batch
from .likelihood import score_naive, score_packed, score_shared_prefix

__all__ = ["HFBackend", "DEFAULT_MODEL", "PINNED", "Pinned"]

DEFAULT_MODEL = "smollm2-135m-instruct-gguf"  #: the pinned offline default (an asset name)


@dataclass(frozen=True)
class Pinned:
    """An LLM the book runs offline: a GGUF file of a pinned asset (:mod:`recnotes.assets`)."""

    asset: str  #: the asset's name, which is also the model's spec for :func:`load_backend`
    gguf: str  #: the GGUF file in the asset
    name: str  #: the model's name in tables
    origin: str  #: where the weights come from, in words


#: the pinned LLMs, by spec: the default, and a second size for the scale comparison
PINNED: dict[str, Pinned] = {p.asset: p for p in [
    Pinned(DEFAULT_MODEL, "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct-Q4_1",
           "a 4-bit GGUF file (Q4_1) of SmolLM2-135M-Instruct, dequantized"),
    Pinned("gemma3-270m-gguf", "gemma-3-270m-q4_k_m.gguf", "Gemma-3-270M-Q4_K_M",
           "a 4-bit GGUF file (Q4_K_M) of Gemma 3 270M, the pretrained base model, dequantized"),
]}


def _dtype_kwarg(dtype: torch.dtype) -> dict:
    """``dtype=`` for transformers >= 4.56, ``torch_dtype=`` before (Colab may have either)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def _offline_default() -> bool:
    return os.environ.get("RECNOTES_ONLINE", "") not in ("1", "true", "yes")


def _dequantized_default() -> Path:
    """The pinned default model's dequantized folder (:func:`dequantized`)."""
    return dequantized(PINNED[DEFAULT_MODEL])


def dequantized(pinned: Pinned) -> Path:
    """A folder with a pinned GGUF model dequantized to float32 safetensors (and its tokenizer),
    made once from the GGUF file: it loads in seconds, where reading the GGUF takes about half
    a minute, and gives the same numbers (the dequantized values are exact in float32)."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir = assets.fetch(pinned.asset, quiet=True)
    folder = gguf_dir / "dequantized-float32"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    tmp = Path(tempfile.mkdtemp(prefix=".dequantized-", dir=gguf_dir))
    try:
        with hf_progress():
            tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=pinned.gguf, local_files_only=True)
            net = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=pinned.gguf, local_files_only=True,
                                                       **_dtype_kwarg(torch.float32))
        # transformers will not save_pretrained a model read from GGUF: write the weights and a
        # config without the quantization entry ourselves (tied weights are stored once)
        from safetensors.torch import save_model

        save_model(net, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = net.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(folder)  # atomic; another process may have made it meanwhile
        except OSError:
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class HFBackend(LLMBackend):
    """A local Hugging Face causal LM (see the module docstring)."""

    supports_likelihood = True

    def __init__(self, model: torch.nn.Module, tokenizer, name: str,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.name = name
        # bottom blocks' output shared with models equal below their adapters (likelihood.LowerLayers)
        self.origin = name  #: where the weights come from, in words (set by from_pretrained)

    def __repr__(self) -> str:
        dtype = next(self.model.parameters()).dtype
        return f"HFBackend({self.name!r}, device={self.device.type}, dtype={dtype})"

    # ------------------------------------------------------------------ load
    @classmethod
    def from_pretrained(cls, model: str | Path | None = None, *, gguf_file: str | None = None,
                        device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                        online: bool | None = None) -> "HFBackend":
        """Load a causal LM and its tokenizer.

        ``model=None`` is the pinned offline GGUF asset; a name of :data:`PINNED` is that
        pinned model; otherwise a local folder or a Hugging Face model id.  Offline (the default; ``online=True`` or
        ``RECNOTES_ONLINE=1`` to download) only local files are read.  ``dtype``
        defaults to :func:`recnotes.device.inference_dtype`: bf16 on CUDA and on CPUs
        that compute in bf16 natively, float32 elsewhere.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        online = (not _offline_default()) if online is None else online
        device = get_device(device)
        if dtype is None:
            dtype = inference_dtype(device)
        if model is None or str(model) in PINNED:
            pinned = PINNED[DEFAULT_MODEL if model is None else str(model)]
            source: str | Path = dequantized(pinned)
            name, local_only, origin = pinned.name, True, pinned.origin
        else:
            source, local_only = model, not online
            name = Path(str(model)).name if Path(str(model)).exists() else str(model)
            origin = f"{name} (Hugging Face weights)"
        kwargs: dict = {"local_files_only": local_only}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            with hf_progress():
                tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
                net = AutoModelForCausalLM.from_pretrained(source, **_dtype_kwarg(dtype), **kwargs)
        except (OSError, ValueError) as err:
            if local_only and not Path(str(source)).exists():
                raise LLMBackendError(
                    f"model {str(model)!r} is not available offline (it is not in the local "
                    f"Hugging Face cache). Either pass online=True (or set RECNOTES_ONLINE=1) on a "
                    f"machine with internet access to download it once, pass the path of a local "
                    f"folder holding it, or use the pinned default (model=None)."
                ) from err
            raise LLMBackendError(f"could not load model {str(model)!r}: {err}") from err
        net = net.to(device=device, dtype=dtype)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        backend = cls(net, tokenizer, name=name, device=device)
        backend.origin = f"{origin}, run in {str(dtype).removeprefix('torch.')}"
        return backend

    def describe(self) -> dict:
        """Device, dtype, parameters (LoRA adapters not counted), blocks and origin of the model."""
        return {"device": str(self.device),
                "dtype": str(next(self.model.parameters()).dtype).removeprefix("torch."),
                "parameters": sum(p.numel() for n, p in self.model.named_parameters() if "lora_" not in n),
                "blocks": int(self.model.config.num_hidden_layers), "origin": self.origin}

    # --------------------------------------------------------------- tokens
    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids of a prompt.  Plain text is tokenized as it is (after the tokenizer's BOS
        token where it adds one); a chat ends with the assistant's turn opening (a base model
        without a chat template gets ``"Role: content"`` lines and ``"Assistant:"``)."""
        if isinstance(prompt, str):
            return self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        messages = prompt
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                      add_generation_prompt=True)
        else:
            text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages)
            text = (self.tokenizer.bos_token or "") + text + "Assistant:"
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def continuation_ids(self, continuations: Sequence[str], end_token: bool = False) -> list[list[int]]:
        """Token ids of each continuation, tokenized on its own (no special tokens), followed by
        the end-of-text token when ``end_token`` (so a title must also *end* where it does)."""
        ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
        if any(len(i) == 0 for i in ids):
            raise ValueError("every continuation needs at least one token (got an empty string)")
        if end_token:
            eos = self.tokenizer.eos_token_id
            if eos is None:
                raise LLMBackendError(f"{self.name} has no end-of-text token to end continuations with")
            ids = [i + [int(eos)] for i in ids]
        return ids

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def score_batch(self, prompts: Sequence[Prompt], continuations: Sequence[Sequence[str]],
                    scorer: str = "packed", end_token: bool = False, reduce: str = "mean",
                    lower=None) -> list[np.ndarray]:
        """:meth:`score_continuations` for several users at once (one packed pass for all of
        them with the ``packed`` scorer; one user after the other with the others).

        ``scorer`` picks the path (:mod:`recnotes.models.llm.likelihood`): ``packed`` (the prompt
        and all continuations in one row with a block mask), ``shared`` (the prompt's KV cache
        copied over a right-padded batch of continuations) or ``naive`` (each continuation
        with its own full prompt, the slow reference).  All give the same numbers.  ``lower``:
        the bottom blocks' output shared with other models (the ``packed`` scorer only)."""
        check_batch(prompts, continuations, scorer, reduce)
        batch = [(self.prompt_ids(p), self.continuation_ids(c, end_token)) for p, c in zip(prompts, continuations)]
        pad = int(self.tokenizer.pad_token_id)
        if scorer == "packed":
            results = score_packed(self.model, batch, self.device, pad_id=pad, lower=lower)
        else:
            fn = score_shared_prefix if scorer == "shared" else score_naive
            results = [fn(self.model, prefix, conts, self.device, pad_id=pad) for prefix, conts in batch]
        out = []
        for (prefix, conts), (sums, lengths) in zip(batch, results):
            self.usage.add(len(prefix) * (len(conts) if scorer == "naive" else 1), int(lengths.sum()))
            out.append(sums / lengths if reduce == "mean" else np.asarray(sums, dtype=np.float64))
        return out

    # ------------------------------------------------------------- generation
    @torch.no_grad()
    def chat(self, messages: Sequence[Message], max_new_tokens: int = 64,
             temperature: float = 0.0) -> Completion:
        ids = torch.tensor([self.prompt_ids(messages)], device=self.device)
        kwargs: dict = {"do_sample": temperature > 0}
        if temperature > 0:
            kwargs["temperature"] = temperature
        else:  # greedy: silence the sampling defaults of the generation config
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids),
                                  max_new_tokens=max_new_tokens,
                                  pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        new = out[0, ids.shape[1]:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        self.usage.add(ids.shape[1], len(new))
        return Completion(text=text, prompt_tokens=ids.shape[1], completion_tokens=len(new))
