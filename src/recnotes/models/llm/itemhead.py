"""The LLM as a sequential recommender with an item head: every film scored, as GPTRec scores it.

The pretrained body reads a user's films as the list prompt writes them (the header, then one
line per film: title, year, newline).  The hidden state at the last token of a film's line
holds the history up to that film; it is scored against an **item matrix**, one row per
film, with a full-softmax cross-entropy over the catalogue at every line of a window, as
GPTRec is trained (Lite-LLM4Rec's item projection head, HLLM's split of item and user
models).  The matrix starts from the LLM's own vector of each film
(:func:`~recnotes.models.llm.items.llm_item_vectors`, HLLM's item embedding), normalised;
a score is ``scale * <(h - c) / |h - c|, E[item]> + bias[item]`` with a fixed logit
``scale`` (an inverse temperature).  The LLM's states share one dominant direction (the films'
vectors have a mean cosine of about 0.97 with each other), so every film starts with nearly
the same score; ``settings.center`` subtracts the films' mean vector ``c`` (trained) from the
matrix's start and from the states.  Without it ``c`` is zero: the validation search
(``book/tuning/ItemHead.json``) preferred that.

Trained: LoRA adapters on the top ``layers`` blocks, the item matrix and the bias.
The bottom blocks stay frozen.  The training windows overlap by one film, so every training
film but each user's first is a target exactly once, after the films before it in its window.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...device import training_dtype
from ..base import Recommender, check_histories
from ..kernels import linear_cross_entropy
from .backends import HFBackend
from .finetune import TARGET_MODULES, _quiet_peft, save_peft
from .items import llm_item_vectors
from .likelihood import decoder_and_head, pad_right
from .prompts import LIST_HEADER, continuation_text
from .steps import run_steps

if TYPE_CHECKING:  # pragma: no cover
    from ...data.splits import Split

__all__ = ["ItemHeadSettings", "ItemHeadLLM", "item_windows"]


@dataclass(frozen=True)
class ItemHeadSettings:
    """How the item-head LLM is built and trained.  The defaults are the best setting of the
    validation search (``book/tuning/ItemHead.json``; a test ties them)."""

    rank: int = 4
    alpha: float = 8.0
    layers: int = 4  # adapters on the top `layers` blocks
    window: int = 20  # films per training window (and the most a user's history shows)
    lr: float = 1e-3  # the adapters'
    head_lr: float = 1e-2  # the item matrix's and bias's
    batch_size: int = 4  # windows per step
    passes: float = 1.0  # over the training targets (a fraction stops early)
    targets: int | None = None  # the run's length in targets instead (a proxy run of a search)
    warmup_steps: int = 10
    scale: float = 16.0  # the fixed logit scale of <(h - c) / |h - c|, E[item]>
    center: bool = False  # subtract the films' mean vector from the matrix's start and from the states
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.rank, self.layers, self.batch_size) < 1 or self.window < 2 or self.passes <= 0:
            raise ValueError("rank, layers and batch_size must be >= 1, window >= 2, passes > 0")
        if self.targets is not None and self.targets < 1:
            raise ValueError(f"targets must be >= 1 or None, got {self.targets}")


def item_windows(split: "Split", window: int, seed: int = 0) -> list[np.ndarray]:
    """Every user's training sequence cut into windows of up to ``window`` films that overlap by
    one (a window starts with the film the previous one ended on), in a seeded random order:
    every training film but each user's first is a target (a film after the first of its
    window) exactly once."""
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    out = []
    for seq in split.train:
        seq = np.asarray(seq, dtype=np.int64)
        for start in range(0, max(1, len(seq) - 1), window - 1):
            w = seq[start:start + window]
            if len(w) >= 2:
                out.append(w)
    order = np.random.default_rng([seed, 17]).permutation(len(out))
    return [out[int(i)] for i in order]


class ItemHeadLLM(Recommender, torch.nn.Module):
    """The pretrained LLM body with LoRA adapters and an item head (see the module docstring)."""

    name = "LLMItemHead"

    def __init__(self, backend: HFBackend, titles: Sequence[str], settings: ItemHeadSettings | None = None,
                 vectors: np.ndarray | None = None) -> None:
        """``vectors``: the LLM's item vectors of ``titles`` (:func:`llm_item_vectors` of this
        backend, computed here when not given: a pass over every title)."""
        import copy

        from peft import LoraConfig, get_peft_model

        torch.nn.Module.__init__(self)
        self.settings = s = settings or ItemHeadSettings()
        self.titles = list(titles)
        self.device_ = backend.device
        # peft puts the adapters into the model in place: a copy keeps the backend's model as it is
        model = copy.deepcopy(backend.model)
        n_layers = model.config.num_hidden_layers
        if s.layers > n_layers:
            raise ValueError(f"layers={s.layers}, but the model has {n_layers} blocks")
        self.backend = HFBackend(model, backend.tokenizer, name=backend.name, device=backend.device)
        vectors = torch.as_tensor(llm_item_vectors(self.backend, self.titles) if vectors is None else vectors)
        if vectors.shape[0] != len(self.titles):
            raise ValueError(f"{vectors.shape[0]} item vectors for {len(self.titles)} titles")
        torch.manual_seed(s.seed)
        config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=0.0, bias="none",
                            target_modules=list(TARGET_MODULES),
                            layers_to_transform=list(range(n_layers - s.layers, n_layers)))
        with _quiet_peft():
            self.body = get_peft_model(model, config)
        self.body.eval()
        self.backend.model = self.body
        #: the item matrix: the LLM's own vector of each film (centred if asked), normalised (row 0: padding)
        vectors = vectors.float()
        mean = vectors[1:].mean(dim=0) if s.center else torch.zeros(vectors.shape[1])
        #: the states' centre (trained; fixed at zero without ``settings.center``)
        self.center = torch.nn.Parameter(mean.clone(), requires_grad=s.center)
        self.items = torch.nn.Parameter(F.normalize(vectors - mean, dim=1))
        self.bias = torch.nn.Parameter(torch.zeros(len(self.titles)))
        self.n_items = len(self.titles) - 1
        self._header = self.backend.prompt_ids(LIST_HEADER)
        lines = self.backend.continuation_ids([continuation_text(t, "list") for t in self.titles[1:]])
        self._lines = [[]] + lines
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.targets_seen = 0

    # ------------------------------------------------------------ the forward pass
    def _ids(self, films: Sequence[int]) -> tuple[list[int], list[int]]:
        """The prompt's token ids for ``films`` and the position of the last token of each line."""
        ids, ends = list(self._header), []
        for f in films:
            ids += self._lines[int(f)]
            ends.append(len(ids) - 1)
        return ids, ends

    def states(self, windows: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Per window, the final hidden states ``[len(window), hidden]`` at the end of each film's
        line (a right-padded batch; causal, so a state sees only its line and those before)."""
        built = [self._ids(w) for w in windows]
        ids, mask = pad_right([b[0] for b in built], int(self.backend.tokenizer.pad_token_id))
        decoder, _ = decoder_and_head(self.body)
        weights = self.body.get_input_embeddings().weight
        half = weights.dtype in (torch.bfloat16, torch.float16)
        with torch.autocast(self.device_.type, dtype=weights.dtype, enabled=half):
            hidden = decoder(input_ids=ids.to(self.device_), attention_mask=mask.to(self.device_),
                             use_cache=False).last_hidden_state
        return [hidden[r, torch.as_tensor(ends, device=hidden.device)] for r, (_, ends) in enumerate(built)]

    def _query(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(h.float() - self.center, dim=-1) * self.settings.scale

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores ``[n, n_items + 1]`` of every film after the states ``h [n, hidden]``."""
        return self._query(h) @ self.items.T + self.bias

    def loss(self, windows: Sequence[Sequence[int]]) -> torch.Tensor:
        """The training loss of ``windows``: the mean cross-entropy over the catalogue of every
        film after the first of its window, from the films before it."""
        states = self.states([w[:-1] for w in windows])
        target = torch.as_tensor(np.concatenate([np.asarray(w[1:]) for w in windows]), device=states[0].device)
        return linear_cross_entropy(self._query(torch.cat(states)), self.items, self.bias, target,
                                    training_dtype(self.device_))

    # ------------------------------------------------------------ scoring
    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray], batch: int = 8) -> torch.Tensor:
        """Every film's score after each history's last ``window - 1`` films (the padding column
        is ``-inf``)."""
        n = self._require_fitted()
        hs = [h[-(self.settings.window - 1):] for h in check_histories(histories, n)]
        self.body.eval()
        out = torch.empty((len(hs), n + 1))
        for start in range(0, len(hs), batch):
            chunk = hs[start:start + batch]
            empty = [len(h) == 0 for h in chunk]
            states = self.states([h if len(h) else np.array([1]) for h in chunk])
            last = torch.stack([s[-1] for s in states])
            scores = self.logits(last).float().cpu()
            for r, e in enumerate(empty):
                if e:  # no history: the bias alone (the head's popularity)
                    scores[r] = self.bias.detach().float().cpu()
            out[start:start + len(chunk)] = scores
        out[:, 0] = -math.inf
        return out

    # ------------------------------------------------------------ training
    def _schedule(self, split: "Split") -> list[list[np.ndarray]]:
        """The run's steps: each a batch of windows; a pass takes every window once, and each pass
        after the first draws a new seeded order."""
        s = self.settings
        windows = item_windows(split, s.window, s.seed)
        per_pass = sum(len(w) - 1 for w in windows)
        total = s.targets if s.targets is not None else int(round(s.passes * per_pass))
        gen = np.random.default_rng([s.seed, 19])
        steps, seen, order = [], 0, windows
        while seen < total:
            for i in range(0, len(order), s.batch_size):
                chunk = order[i:i + s.batch_size]
                steps.append(chunk)
                seen += sum(len(w) - 1 for w in chunk)
                if seen >= total:
                    break
            order = [windows[int(i)] for i in gen.permutation(len(windows))]
        self.targets_per_pass = per_pass
        return steps

    def _signature(self) -> dict:
        return {"settings": json.loads(json.dumps(asdict(self.settings))), "model": self.backend.name,
                "items": len(self.titles)}

    def fit(self, split: "Split", progress: bool = True, max_seconds: float | None = None,
            checkpoint_dir: str | Path | None = None, keep: Sequence[int] = (),
            checkpoint_every: int = 50) -> "ItemHeadLLM":
        """Train on the training windows (:func:`item_windows`) for ``settings.passes`` passes (or
        ``settings.targets`` targets) in :func:`~recnotes.models.llm.steps.run_steps`' loop:
        AdamW, linear warm-up then linear decay to zero, gradients clipped at 1.

        With ``checkpoint_dir`` the state (adapters, head, optimizer) is saved there every
        ``checkpoint_every`` steps and an interrupted run resumes from it; the model after each
        number of targets in ``keep`` (and at the end) is saved as ``keep-<targets>/``
        (:meth:`save`)."""
        if split.n_items != self.n_items:
            raise ValueError(f"the split has {split.n_items} films, the item head {self.n_items}")
        s = self.settings
        schedule = self._schedule(split)
        adapters = [p for p in self.body.parameters() if p.requires_grad]
        head = [self.items, self.bias] + ([self.center] if s.center else [])
        opt = torch.optim.AdamW([{"params": adapters, "lr": s.lr}, {"params": head, "lr": s.head_lr}],
                                weight_decay=0.0)

        def step_loss(step: int) -> torch.Tensor:
            loss = self.loss(schedule[step])
            loss.backward()
            return loss.detach()

        self.body.train()
        run_steps(self, opt, adapters + head, [sum(len(w) - 1 for w in chunk) for chunk in schedule], step_loss,
                  warmup=s.warmup_steps, signature=self._signature(), folder=checkpoint_dir, keep=keep,
                  checkpoint_every=checkpoint_every, desc="item-head LLM (targets)", progress=progress,
                  max_seconds=max_seconds)
        self.body.eval()
        return self

    def keep_model(self, folder: Path, targets: int) -> None:
        self.body.eval()
        self.save(folder / f"keep-{targets}")
        self.body.train()

    def kept(self, folder: str | Path) -> dict[int, Path]:
        """``{targets: folder}`` of the models a :meth:`fit` with ``checkpoint_dir=folder`` kept."""
        return dict(sorted((int(p.name.split("-", 1)[1]), p) for p in Path(folder).glob("keep-*")
                           if (p / "item_head.json").is_file()))

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {f"adapter.{k}": v for k, v in get_peft_model_state_dict(self.body).items()} | \
            {"items": self.items.detach(), "bias": self.bias.detach(), "center": self.center.detach()}

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        with _quiet_peft():
            set_peft_model_state_dict(self.body, {k[8:]: v for k, v in tensors.items() if k.startswith("adapter.")})
        with torch.no_grad():
            self.items.copy_(tensors["items"])
            self.bias.copy_(tensors["bias"])
            self.center.copy_(tensors["center"])

    # ------------------------------------------------------------ saving
    def save(self, folder: str | Path, head_dtype: torch.dtype = torch.float32) -> None:
        """The adapters in peft's format (``adapter_config.json``, ``adapter_model.safetensors``,
        :func:`~recnotes.models.llm.finetune.save_peft`) and the head (``item_head.safetensors``, in ``head_dtype``) with the settings
        (``item_head.json``)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        save_peft(self.body, folder, self.backend.name)  # the folder is written anew
        save_file({"items": self.items.detach().to(head_dtype).cpu().contiguous(),
                   "bias": self.bias.detach().to(head_dtype).cpu().contiguous(),
                   "center": self.center.detach().cpu().contiguous()},  # float32: it is subtracted from states
                  str(folder / "item_head.safetensors"))
        (folder / "item_head.json").write_text(json.dumps(
            {"settings": asdict(self.settings), "model": self.backend.name, "targets_seen": self.targets_seen,
             "train_seconds": round(self.train_seconds, 2)}, indent=1) + "\n")

    def load(self, folder: str | Path) -> "ItemHeadLLM":
        """Load what :meth:`save` wrote into this model (the same settings)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta = json.loads((folder / "item_head.json").read_text())
        if meta["settings"] != json.loads(json.dumps(asdict(self.settings))):
            raise ValueError(f"{folder} holds a model with other settings: {meta['settings']}")
        head = {k: v.float() for k, v in load_file(str(folder / "item_head.safetensors")).items()}
        adapters = {f"adapter.{k}": v for k, v in load_file(str(folder / "adapter_model.safetensors")).items()}
        self.load_checkpoint_state(adapters | head)
        self.targets_seen = meta["targets_seen"]
        self.train_seconds = meta.get("train_seconds", 0.0)
        self.body.eval()
        return self

    @classmethod
    def from_saved(cls, backend: HFBackend, titles: Sequence[str], folder: str | Path) -> "ItemHeadLLM":
        """The model :meth:`save` wrote into ``folder``, over ``backend`` (its settings read from
        the folder; no pass over the titles: the item matrix is the saved one)."""
        meta = json.loads((Path(folder) / "item_head.json").read_text())
        settings = ItemHeadSettings(**meta["settings"])
        hidden = int(backend.model.config.hidden_size)
        zeros = np.zeros((len(titles), hidden), dtype=np.float32)
        zeros[:, 0] = 1.0  # any unit rows: load() replaces them
        return cls(backend, titles, settings, vectors=zeros).load(folder)
