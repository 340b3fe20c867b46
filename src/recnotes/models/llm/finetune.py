"""The article's recipe applied to the language model itself: pre-trained, then fine-tuned.

:class:`FineTunedLLMRanker` adds LoRA adapters {Hu et al. 2022} through
``peft`` to the top ``layers`` transformer blocks of a pretrained causal LM and
trains only them on *next-title generation* from the **training** sequences,
as TALLRec and LlamaRec fine-tune LLaMA for recommendation: an example is a
window of a user's training sequence shown in the ``completion`` format
(:func:`~recnotes.models.llm.prompts.completion_prompt`), followed by the
title of the film that came next and the end-of-text token; the loss is the
cross-entropy of the title's tokens only.  Validation and test items never
enter an example.

The fine-tuned model ranks candidates through the same likelihood path as the
zero-shot ranker (it is an :class:`~recnotes.models.llm.ranker.LLMRanker` with
the ``completion`` template), so the scores are comparable.

Training is seeded (the examples drawn, their order, the adapters'
initialisation), shows a progress bar, and writes a checkpoint (adapters,
optimizer and random state as safetensors + JSON, atomically) every
``checkpoint_every`` steps and at every size of ``keep``: an interrupted run
resumes, and the adapters after 64, 256, ... examples stay on disk for the
learning curve.  Only the adapted blocks are differentiated: the gradient
stops at the lowest of them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ...progress import progress_bar
from ...safeio import file_sha256, move_aside, write_atomic
from .backends import HFBackend
from .likelihood import decoder_and_head
from .prompts import completion_prompt, continuation_text
from .ranker import LLMRanker

if TYPE_CHECKING:  # pragma: no cover
    from ...data.splits import Split

__all__ = ["LoRASettings", "FineTunedLLMRanker", "training_examples", "TARGET_MODULES"]

#: the linear layers of a Llama-style block that get adapters
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoRASettings:
    """How to fine-tune: the adapters, the examples and the optimizer."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    layers: int = 8  # adapters on the top `layers` blocks; the gradient stops below them
    targets: tuple[str, ...] = TARGET_MODULES
    n_examples: int = 1024  # training examples, seen once each
    keep: tuple[int, ...] = (64, 256, 1024)  # sizes whose adapters are kept (the learning curve)
    batch_size: int = 8
    lr: float = 1e-2  # chosen on validation candidates (scripts/select_lora.py)
    warmup_steps: int = 8
    max_history: int = 10
    checkpoint_every: int = 16  # steps
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rank < 1 or self.layers < 1 or self.n_examples < 1 or self.batch_size < 1:
            raise ValueError("rank, layers, n_examples and batch_size must be >= 1")
        if any(k < 1 or k > self.n_examples for k in self.keep):
            raise ValueError(f"every size in keep must be in 1..n_examples ({self.n_examples}), got {self.keep}")


def training_examples(split: "Split", n: int, max_history: int = 10,
                      seed: int = 0) -> list[tuple[np.ndarray, int]]:
    """``n`` examples ``(history, next item)`` drawn uniformly without replacement from every
    position of every user's **training** sequence that has at least one item before it
    (seeded; the first ``k`` of them are the examples of a run of ``k``)."""
    pairs = [(u, t) for u, seq in enumerate(split.train) for t in range(1, len(seq))]
    if n > len(pairs):
        raise ValueError(f"asked for {n} examples, the training sequences hold {len(pairs)}")
    rng = np.random.default_rng([seed, 7])
    chosen = rng.permutation(len(pairs))[:n]  # a prefix of one permutation: nested for any n
    out = []
    for i in chosen:
        u, t = pairs[int(i)]
        seq = np.asarray(split.train[u])
        out.append((seq[max(0, t - max_history):t], int(seq[t])))
    return out


@contextlib.contextmanager
def _quiet_peft():
    """peft calls a transformers method that transformers 5 marks as deprecated: not our warning
    to show on every page that fine-tunes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class FineTunedLLMRanker(LLMRanker):
    """An :class:`LLMRanker` (likelihood, ``completion`` template) whose model gets LoRA adapters
    trained by :meth:`fit` (see the module docstring)."""

    def __init__(self, backend: HFBackend, titles: Sequence[str], settings: LoRASettings | None = None,
                 **ranker_kwargs) -> None:
        settings = settings or LoRASettings()
        # peft puts the adapters into the model in place: work on a copy, so the backend passed
        # in (the zero-shot model) stays as it is
        backend = HFBackend(copy.deepcopy(backend.model), backend.tokenizer, name=backend.name,
                            device=backend.device)
        super().__init__(backend, titles, method="likelihood", template="completion",
                         max_history=settings.max_history, **ranker_kwargs)
        self.settings = settings
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.examples_seen = 0
        self._wrap()

    @property
    def name(self) -> str:
        return f"LLMRanker[LoRA {self.examples_seen},completion]"

    # ------------------------------------------------------------ adapters
    def _wrap(self) -> None:
        """Put LoRA adapters (zero at the start: B = 0) on the top blocks of the backend's model."""
        from peft import LoraConfig, get_peft_model

        s = self.settings
        model = self.backend.model
        n_layers = model.config.num_hidden_layers
        if s.layers > n_layers:
            raise ValueError(f"layers={s.layers}, but the model has {n_layers} blocks")
        torch.manual_seed(s.seed)
        config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, bias="none",
                            target_modules=list(s.targets),
                            layers_to_transform=list(range(n_layers - s.layers, n_layers)))
        with _quiet_peft():
            self.backend.model = get_peft_model(model, config)
        self.backend.model.eval()

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The adapters' weights (the only trained ones)."""
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.backend.model, save_embedding_layers=False)
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def load_adapters(self, path: str | Path, examples: int | None = None) -> "FineTunedLLMRanker":
        """Load adapters saved by :meth:`save_adapters` (or kept by :meth:`fit`)."""
        from peft import set_peft_model_state_dict

        with _quiet_peft():
            set_peft_model_state_dict(self.backend.model, load_file(str(path)))
        self.backend.model.eval()
        if examples is not None:
            self.examples_seen = examples
        return self

    def save_adapters(self, path: str | Path) -> None:
        """Write the adapters as safetensors (atomically)."""
        state = self.adapter_state()
        write_atomic(Path(path), lambda tmp: save_file(state, str(tmp)))

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.backend.model.parameters() if p.requires_grad)

    # ------------------------------------------------------------ training
    def _tokens(self, history: np.ndarray, target: int) -> tuple[list[int], list[int]]:
        """Prompt ids and target ids (the title, then the end-of-text token) of one example."""
        prompt = completion_prompt([self.titles[int(i)] for i in history])
        prompt_ids = self.backend.prompt_ids(prompt)
        target_ids = self.backend.continuation_ids([continuation_text(self.titles[target], "completion")],
                                                   end_token=True)[0]
        return prompt_ids, target_ids

    def _loss(self, batch: list[tuple[list[int], list[int]]]) -> torch.Tensor:
        """Mean cross-entropy of the target tokens of a right-padded batch of examples."""
        device = self.backend.device
        length = max(len(p) + len(t) for p, t in batch)
        pad = int(self.backend.tokenizer.pad_token_id)
        ids = torch.full((len(batch), length), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        rows, cols, targets = [], [], []
        for r, (p, t) in enumerate(batch):
            seq = p + t
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            rows += [r] * len(t)
            cols += range(len(p) - 1, len(seq) - 1)  # the state before each target token
            targets += t
        decoder, head = decoder_and_head(self.backend.model)
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).last_hidden_state
        logits = head(hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)])
        return F.cross_entropy(logits.float(), torch.tensor(targets, device=device))

    def fit(self, split: "Split", checkpoint_dir: str | Path | None = None,
            progress: bool = True) -> "FineTunedLLMRanker":
        """Train the adapters on ``settings.n_examples`` examples of ``split``'s training sequences.

        With ``checkpoint_dir``, the state is saved there every ``checkpoint_every`` steps (and an
        interrupted run resumes from it), and the adapters after each size in ``settings.keep``
        are kept as ``adapter-<size>.safetensors``.
        """
        s = self.settings
        examples = training_examples(split, s.n_examples, s.max_history, s.seed)
        model = self.backend.model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
        steps = math.ceil(s.n_examples / s.batch_size)

        def lr_at(step: int) -> float:  # linear warm-up, then linear decay to zero
            if step < s.warmup_steps:
                return s.lr * (step + 1) / s.warmup_steps
            return s.lr * max(0.0, (steps - step) / max(1, steps - s.warmup_steps))

        folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        start_step, self.history, self.train_seconds = 0, [], 0.0
        resumed = self._resume(folder, opt) if folder is not None else None
        if resumed is not None:
            start_step, self.history, self.train_seconds = resumed
        torch.manual_seed(s.seed + 1 + start_step)  # adapter dropout, if any
        bar = progress_bar(total=s.n_examples, initial=min(s.n_examples, start_step * s.batch_size),
                           desc="LoRA fine-tuning", leave=False, disable=not progress)
        model.train()
        for step in range(start_step, steps):
            t0 = time.perf_counter()
            chunk = examples[step * s.batch_size:(step + 1) * s.batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            loss = self._loss([self._tokens(h, t) for h, t in chunk])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            seen = min(s.n_examples, (step + 1) * s.batch_size)
            self.train_seconds += time.perf_counter() - t0
            self.history.append({"step": step + 1, "examples": seen, "loss": float(loss.detach()),
                                 "seconds": self.train_seconds})
            bar.update(len(chunk))
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            if folder is not None:
                crossed = [k for k in s.keep if (step * s.batch_size) < k <= seen]
                for k in crossed:
                    self.save_adapters(folder / f"adapter-{k}.safetensors")
                if crossed or (step + 1) % s.checkpoint_every == 0 or step + 1 == steps:
                    self._checkpoint(folder, opt, step + 1)
        bar.close()
        model.eval()
        self.examples_seen = s.n_examples
        return self

    # ---------------------------------------------------------- checkpoints
    def _signature(self) -> dict:
        return {"settings": json.loads(json.dumps(asdict(self.settings))), "model": self.backend.name}

    def _checkpoint(self, folder: Path, opt: torch.optim.Optimizer, step: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        state = opt.state_dict()
        tensors = {f"adapter.{k}": v for k, v in self.adapter_state().items()}
        tensors.update({f"opt.{i}.{k}": v for i, st in state["state"].items() for k, v in st.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        write_atomic(folder / "last.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        meta = {"signature": self._signature(), "step": step, "history": self.history,
                "train_seconds": self.train_seconds, "param_groups": state["param_groups"],
                "sha256": file_sha256(folder / "last.safetensors")}
        write_atomic(folder / "last.json", lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))

    def _resume(self, folder: Path, opt: torch.optim.Optimizer) -> tuple[int, list, float] | None:
        """Restore adapters, optimizer and history from ``folder``'s checkpoint, if it is this run's."""
        from peft import set_peft_model_state_dict

        if not (folder / "last.json").is_file():
            return None
        try:
            meta = json.loads((folder / "last.json").read_text())
            if meta["signature"] != self._signature():
                return None
            if file_sha256(folder / "last.safetensors") != meta["sha256"]:
                raise ValueError("last.safetensors does not match the checksum in last.json")
            tensors = load_file(str(folder / "last.safetensors"))
        except Exception as err:  # noqa: BLE001 - an unreadable checkpoint is discarded
            move_aside(folder / "last.json", "the fine-tuning checkpoint", f"{type(err).__name__}: {err}",
                       then="fine-tuning from the first example")
            return None
        with _quiet_peft():
            set_peft_model_state_dict(self.backend.model,
                                      {k[8:]: v for k, v in tensors.items() if k.startswith("adapter.")})
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, i, name = key.split(".", 2)
                state.setdefault(int(i), {})[name] = value
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        torch.set_rng_state(tensors["rng.torch"])
        return meta["step"], meta["history"], meta["train_seconds"]
