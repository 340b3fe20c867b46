"""The article's recipe applied to the language model itself: pre-trained, then fine-tuned.

:class:`FineTunedLLMRanker` adds LoRA adapters {Hu et al. 2022} through
``peft`` to the top ``layers`` transformer blocks of a pretrained causal LM and
trains only them on the **training** sequences written as the ``list`` prompt
(:func:`~recnotes.models.llm.prompts.list_prompt`): a window of ``window``
consecutive films of one user's training sequence, one title per line.  The
loss is the cross-entropy of every title's tokens (and the newline that ends
its line) given the lines before it, so each film of the window is a target,
as each position of a sequence is a target for GPTRec.  The windows cut each
training sequence into consecutive pieces, so every training film is a target
exactly once per pass; validation and test films never enter a window.

The fine-tuned model ranks candidates as the zero-shot ``list`` ranker does (it
is an :class:`~recnotes.models.llm.ranker.LLMRanker` with the ``list``
template): a candidate's score is the log-probability of its line after the
user's last ``window - 1`` lines, the same tokens that the loss counts, so
training and scoring cannot drift apart (:meth:`FineTunedLLMRanker.line_logprobs`
computes a window's lines through the training path, for the tests).

Training is seeded (the windows' order, the adapters' initialisation), shows a
progress bar, and writes a checkpoint (adapters, optimizer and random state as
safetensors + JSON, atomically) every ``checkpoint_every`` steps and at every
size of ``keep``: an interrupted run resumes, and the adapters after 1,000,
4,000, ... targets stay on disk for the learning curve.  The learning rate warms
up, then decays linearly to zero at ``n_targets``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .backends import HFBackend
from .likelihood import decoder_and_head, head_logprobs, mask_to, packed_mask
from .prompts import LIST_HEADER, continuation_text
from .ranker import LLMRanker
from .steps import run_steps

if TYPE_CHECKING:  # pragma: no cover
    from ...data.splits import Split

__all__ = ["LoRASettings", "FineTunedLLMRanker", "training_windows", "take_windows", "with_adapters", "save_peft",
           "TARGET_MODULES"]

#: the training losses: the language model's on every line token, a softmax of each target
#: line's mean log-probability against sampled negative lines, or their sum
OBJECTIVES = ("lm", "rank", "lm+rank")

#: the linear layers of a Llama-style block that get adapters
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoRASettings:
    """How to fine-tune: the adapters, the windows and the optimizer."""

    rank: int = 4  # rank, layers, window, lr: chapter 6's (chosen on validation: book/tuning/LoRA.json)
    alpha: float = 8.0
    dropout: float = 0.0
    layers: int = 8  # adapters on the top `layers` blocks; the gradient stops below them
    targets: tuple[str, ...] = TARGET_MODULES
    window: int = 40  # films per training window (and the ranker's history + 1)
    n_targets: int = 8000  # titles trained on, each once (the budget)
    keep: tuple[int, ...] = (1000, 4000, 8000)  # numbers of targets whose adapters are kept
    batch_size: int = 4  # windows per step
    lr: float = 8e-3
    warmup_steps: int = 10
    checkpoint_every: int = 16  # steps
    seed: int = 0
    objective: str = "lm"  # "lm", "rank" or "lm+rank" (see _loss)
    negatives: int = 4  # sampled negative titles per target, for the rank objective

    def __post_init__(self) -> None:
        if min(self.rank, self.layers, self.n_targets, self.batch_size) < 1 or self.window < 2:
            raise ValueError("rank, layers, n_targets and batch_size must be >= 1, window >= 2")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if "rank" in self.objective and self.negatives < 1:
            raise ValueError(f"the rank objective needs negatives >= 1, got {self.negatives}")
        if any(k < 1 or k > self.n_targets for k in self.keep):
            raise ValueError(f"every size in keep must be in 1..n_targets ({self.n_targets}), got {self.keep}")


def training_windows(split: "Split", window: int = 20, seed: int = 0) -> list[np.ndarray]:
    """Every user's **training** sequence cut into consecutive windows of ``window`` films (the
    last one shorter), in a seeded random order: each training film is in exactly one window."""
    return [w for _, w in _user_windows(split, window, seed)]


def _user_windows(split: "Split", window: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """:func:`training_windows` with each window's user."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    windows = [(u, np.asarray(seq[i:i + window], dtype=np.int64))
               for u, seq in enumerate(split.train) for i in range(0, len(seq), window)]
    windows = [(u, w) for u, w in windows if len(w)]
    order = np.random.default_rng([seed, 11]).permutation(len(windows))
    return [windows[int(i)] for i in order]


def sample_negatives(rng: np.random.Generator, n_items: int, seen: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``shape`` films drawn uniformly from ``1..n_items`` minus ``seen`` (a user's training films),
    without repeats within a row."""
    pool = np.setdiff1d(np.arange(1, n_items + 1), seen)
    if len(pool) < shape[1]:
        raise ValueError(f"only {len(pool)} films the user has not watched, fewer than {shape[1]} negatives")
    return np.stack([rng.choice(pool, shape[1], replace=False) for _ in range(shape[0])])


def take_windows(windows: Sequence[np.ndarray], n_targets: int) -> list[np.ndarray]:
    """The shortest prefix of ``windows`` holding at least ``n_targets`` films (all of them
    when they hold fewer)."""
    out, total = [], 0
    for w in windows:
        if total >= n_targets:
            break
        out.append(w)
        total += len(w)
    return out


@contextlib.contextmanager
def _quiet_peft():
    """peft calls a transformers method that transformers 5 marks as deprecated: not our warning
    to show on every page that fine-tunes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def with_adapters(base: HFBackend, folder: str | Path) -> HFBackend:
    """``base``'s model with the peft adapters of ``folder`` (``adapter_config.json`` and
    ``adapter_model.safetensors``) loaded by ``PeftModel.from_pretrained`` and folded into the
    weights by ``merge_and_unload``: a plain causal LM, as fast as ``base``'s (which is kept)."""
    from peft import PeftModel

    with _quiet_peft():
        model = PeftModel.from_pretrained(copy.deepcopy(base.model), str(folder)).merge_and_unload().eval()
    backend = HFBackend(model, base.tokenizer, name=base.name, device=base.device)
    backend.origin = base.origin
    return backend


def save_peft(model: torch.nn.Module, folder: str | Path, name: str) -> None:
    """Write a peft model's adapters with ``save_pretrained`` (``adapter_config.json`` and
    ``adapter_model.safetensors``) into ``folder``, whole or not at all (written beside it, then
    renamed).  The config names the base model ``name`` (the pinned model is a GGUF file
    dequantized into the cache: its name, not this machine's path); peft's empty model card is
    left out."""
    import shutil

    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with _quiet_peft():
            model.save_pretrained(str(tmp))
        config = json.loads((tmp / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = name
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class FineTunedLLMRanker(LLMRanker):
    """An :class:`LLMRanker` (likelihood, ``list`` template) whose model gets LoRA adapters
    trained by :meth:`fit` (see the module docstring)."""

    def __init__(self, backend: HFBackend, titles: Sequence[str], settings: LoRASettings | None = None,
                 micro_batch: int | None = None, **ranker_kwargs) -> None:
        settings = settings or LoRASettings()
        # peft puts the adapters into the model in place: work on a copy, so the backend passed
        # in (the zero-shot model) stays as it is
        origin = backend.origin
        backend = HFBackend(copy.deepcopy(backend.model), backend.tokenizer, name=backend.name,
                            device=backend.device)
        backend.origin = origin
        super().__init__(backend, titles, method="likelihood", template="list",
                         max_history=settings.window - 1, **ranker_kwargs)
        self.settings = settings
        # windows per forward pass: fewer than a step's batch accumulates the step's gradient over
        # several passes (the same loss, less memory: the rank objective's packed rows are long)
        self.micro_batch = micro_batch
        #: the loss scaler of float16 training (set by :meth:`fit`; a pass-through otherwise)
        self._scaler: torch.amp.GradScaler | None = None
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.targets_seen = 0
        self._wrap()

    @property
    def name(self) -> str:
        return f"LLMRanker[LoRA {self.targets_seen} targets,list]"

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

    def merged(self) -> LLMRanker:
        """This ranker as it is served: a copy of its model with the adapters folded into the
        weights by peft's ``merge_and_unload`` (a plain causal LM, as fast as the zero-shot one),
        behind an :class:`LLMRanker` with the same prompt, history and scoring.  This ranker
        keeps its adapters (it can go on training)."""
        with _quiet_peft():
            model = copy.deepcopy(self.backend.model).merge_and_unload().eval()
        backend = HFBackend(model, self.backend.tokenizer, name=self.backend.name, device=self.backend.device)
        backend.origin = self.backend.origin
        return LLMRanker(backend, self.titles, "likelihood", "list", self.max_history, seed=self.seed,
                         batch_users=self.batch_users, reduce=self.reduce)

    def _compute(self):
        """Where the base weights are bf16 (CUDA, a CPU with native bf16), the adapters (float32,
        for the optimizer) are applied in bf16 too: autocast, without peft's cast of every
        activation to float32 and back (about an eighth of a training step on one CPU core)."""
        dtype = self.backend.model.get_input_embeddings().weight.dtype
        if dtype not in (torch.bfloat16, torch.float16):
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        try:
            from peft.helpers import disable_input_dtype_casting
        except ImportError:  # an older peft: its casts stay, autocast still computes in bf16
            pass
        else:
            stack.enter_context(disable_input_dtype_casting(self.backend.model))
        stack.enter_context(torch.autocast(self.backend.device.type, dtype=dtype))
        return stack

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """The adapters' weights (the only trained ones)."""
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.backend.model, save_embedding_layers=False)
        return {k: v.detach().cpu().contiguous() for k, v in state.items()}

    def save_adapters(self, folder: str | Path) -> None:
        """Write the adapters in peft's format (:func:`save_peft`)."""
        save_peft(self.backend.model, folder, self.backend.name)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.backend.model.parameters() if p.requires_grad)

    # ------------------------------------------------------------ training
    def _tokens(self, window: Sequence[int]) -> tuple[list[int], list[list[int]]]:
        """The header's ids and each line's ids (title and newline) of one window, tokenized as
        the ranker tokenizes a prompt's lines and a candidate's line."""
        header = self.backend.prompt_ids(LIST_HEADER)
        lines = self.backend.continuation_ids([continuation_text(self.titles[int(i)], "list") for i in window])
        return header, lines

    def _forward(self, batch: list[tuple[list[int], list[list[int]]]]):
        """Per-token log-probabilities (as cross-entropy terms) of every line token of a
        right-padded batch of windows, and the (window, line) each token belongs to."""
        device = self.backend.device
        seqs = [header + [t for line in lines for t in line] for header, lines in batch]
        length = max(len(q) for q in seqs)
        pad = int(self.backend.tokenizer.pad_token_id)
        ids = torch.full((len(batch), length), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), length), dtype=torch.long)
        rows, cols, targets, owner = [], [], [], []
        for r, ((header, lines), seq) in enumerate(zip(batch, seqs)):
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
            pos = len(header)
            for k, line in enumerate(lines):
                rows += [r] * len(line)
                cols += range(pos - 1, pos - 1 + len(line))  # the state before each token
                targets += line
                owner += [(r, k)] * len(line)
                pos += len(line)
        decoder, head = decoder_and_head(self.backend.model)
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).last_hidden_state
        nll = -head_logprobs(head, hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)],
                             torch.tensor(targets, device=device))
        return nll, owner

    def _loss(self, batch: list[tuple[list[int], list[list[int]]]],
              negatives: list[list[list[list[int]]]] | None = None) -> torch.Tensor:
        """The training loss of a batch of windows.

        ``lm``: the mean cross-entropy of every line token.  ``rank``: for every line of every
        window, a softmax over its mean log-probability per token and those of
        ``negatives[window][line]`` (sampled lines, each after the same history), with the true
        line as the label, averaged over lines: the LLM's counterpart of a sequential
        recommender's sampled-softmax loss over items.  ``lm+rank``: their sum.
        """
        with self._compute():
            if self.settings.objective == "lm":
                return self._forward(batch)[0].mean()
            if negatives is None:
                raise ValueError(f"the {self.settings.objective} objective needs negatives")
            lm, rank = self._rank_forward(batch, negatives)
            return rank if self.settings.objective == "rank" else lm + rank

    def _backward(self, loss: torch.Tensor) -> None:
        (self._scaler.scale(loss) if self._scaler is not None else loss).backward()

    def _step_loss(self, batch, negatives) -> torch.Tensor:
        """The step's loss, its gradient accumulated (``backward``) in passes of ``micro_batch``
        windows, each weighted by its share of what the loss averages over (line tokens for the
        LM loss, lines for the rank losses), so the gradient is the whole batch's."""
        size = self.micro_batch or len(batch)
        if size >= len(batch):
            loss = self._loss(batch, negatives)
            self._backward(loss)
            return loss.detach()
        parts = [slice(i, i + size) for i in range(0, len(batch), size)]
        per_line = self.settings.objective != "lm"
        weights = [sum(len(lines) if per_line else sum(len(x) for x in lines) for _, lines in batch[p])
                   for p in parts]
        total = 0.0
        for p, w in zip(parts, weights):
            part = self._loss(batch[p], negatives[p] if negatives is not None else None) * (w / sum(weights))
            self._backward(part)
            total += float(part.detach())
        return torch.tensor(total)

    def _rank_forward(self, batch: list[tuple[list[int], list[list[int]]]],
                      negatives: list[list[list[list[int]]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean line-token cross-entropy and the sampled-softmax rank loss of a batch, in
        one pass: each row holds a window, then every negative line packed after it, each
        attending to the window's tokens before its line's position (:func:`~recnotes.models.llm.likelihood.packed_mask`)."""
        device = self.backend.device
        rows, packed = [], []
        # one entry per scored line: (row, [(state, token)...]); a line's score is its mean
        lines_at: list[tuple[int, list[tuple[int, int]]]] = []
        true_lines, neg_lines = [], []
        for r, ((header, lines), negs) in enumerate(zip(batch, negatives)):
            ids = header + [t for line in lines for t in line]
            main = len(ids)
            pos = list(range(main))
            spans, p = [], len(header)
            for k, line in enumerate(lines):
                true_lines.append(len(lines_at))
                lines_at.append((r, [(p - 1 + j, t) for j, t in enumerate(line)]))
                group = []
                for neg in negs[k]:
                    start, fed = len(ids), neg[:-1]
                    spans.append((start, len(fed), p))
                    states = [p - 1] + list(range(start, start + len(fed)))
                    group.append(len(lines_at))
                    lines_at.append((r, list(zip(states, neg))))
                    ids += fed
                    pos += range(p, p + len(fed))
                neg_lines.append(group)
                p += len(line)
            rows.append((len(ids), main, spans))
            packed.append((ids, pos))
        length = max(len(ids) for ids, _ in packed)
        pad = int(self.backend.tokenizer.pad_token_id)
        ids_t = torch.full((len(batch), length), pad, dtype=torch.long)
        pos_t = torch.zeros((len(batch), length), dtype=torch.long)
        for r, (ids, pos) in enumerate(packed):
            ids_t[r, :len(ids)] = torch.tensor(ids)
            pos_t[r, :len(pos)] = torch.tensor(pos)
        dtype = next(self.backend.model.parameters()).dtype
        mask = mask_to(packed_mask(rows, length, dtype, self.backend.model, pos_t), device)
        decoder, head = decoder_and_head(self.backend.model)
        hidden = decoder(input_ids=ids_t.to(device), attention_mask=mask, position_ids=pos_t.to(device),
                         use_cache=False).last_hidden_state
        where_r = [r for r, toks in lines_at for _ in toks]
        where_c = [c for _, toks in lines_at for c, _ in toks]
        targets = [t for _, toks in lines_at for _, t in toks]
        owner = torch.tensor([i for i, (_, toks) in enumerate(lines_at) for _ in toks], device=device)
        nll = -head_logprobs(head, hidden[torch.tensor(where_r, device=device), torch.tensor(where_c, device=device)],
                             torch.tensor(targets, device=device))
        sizes = torch.tensor([len(toks) for _, toks in lines_at], device=device, dtype=nll.dtype)
        score = -torch.zeros(len(lines_at), device=device, dtype=nll.dtype).index_add(0, owner, nll) / sizes
        is_true = torch.zeros(len(lines_at), dtype=torch.bool, device=device)
        is_true[torch.tensor(true_lines, device=device)] = True
        lm = nll[is_true[owner]].mean()
        table = torch.stack([score[torch.tensor([t] + g, device=device)] for t, g in zip(true_lines, neg_lines)])
        rank = F.cross_entropy(table, torch.zeros(len(table), dtype=torch.long, device=device))
        return lm, rank

    def _negatives(self, split: "Split", user: int, window: np.ndarray, rng: np.random.Generator):
        """The ids of ``settings.negatives`` sampled lines for every line of ``window``: films the
        user has not watched in training, a fresh draw per line."""
        films = sample_negatives(rng, len(self.titles) - 1, np.asarray(split.train[user]),
                                 (len(window), self.settings.negatives))
        return [self.backend.continuation_ids([continuation_text(self.titles[int(i)], "list") for i in row])
                for row in films]

    @torch.no_grad()
    def line_logprobs(self, window: Sequence[int]) -> np.ndarray:
        """The summed log-probability of each line of one window under the training loss (the
        model in eval mode): line ``k``'s is what the ranker scores (``reduce="sum"``) for film
        ``window[k]`` after a history of ``window[:k]``."""
        self.backend.model.eval()
        with self._compute():
            nll, owner = self._forward([self._tokens(window)])
        out = np.zeros(len(window))
        for value, (_, k) in zip(nll.double().cpu().numpy(), owner):
            out[k] -= value
        return out

    def fit(self, split: "Split", checkpoint_dir: str | Path | None = None,
            progress: bool = True) -> "FineTunedLLMRanker":
        """Train the adapters on the first ``settings.n_targets`` targets of the shuffled windows
        of ``split``'s training sequences (:func:`training_windows`), ``batch_size`` windows a
        step, in :func:`~recnotes.models.llm.steps.run_steps`' loop.

        With ``checkpoint_dir``, the state is saved there every ``checkpoint_every`` steps (and an
        interrupted run resumes from it), and the adapters after each number of targets in
        ``settings.keep`` are kept in peft's format, in ``adapters-<targets>/`` (:func:`save_peft`).
        """
        s = self.settings
        owned = _user_windows(split, s.window, s.seed)
        windows = take_windows([w for _, w in owned], s.n_targets)
        users = [u for u, _ in owned[:len(windows)]]
        model = self.backend.model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
        # float16 weights (CUDA cards without native bf16) train with a scaled loss
        half = model.get_input_embeddings().weight.dtype == torch.float16
        self._scaler = torch.amp.GradScaler(self.backend.device.type, enabled=half)
        batches = [slice(i, i + s.batch_size) for i in range(0, len(windows), s.batch_size)]

        def step_loss(step: int) -> torch.Tensor:
            negatives = None
            if s.objective != "lm":  # a draw per step, so a resumed run draws the same ones
                rng = np.random.default_rng([s.seed, 13, step])
                negatives = [self._negatives(split, u, w, rng)
                             for u, w in zip(users[batches[step]], windows[batches[step]])]
            return self._step_loss([self._tokens(w) for w in windows[batches[step]]], negatives)

        model.train()
        run_steps(self, opt, params, [sum(len(w) for w in windows[b]) for b in batches], step_loss,
                  warmup=s.warmup_steps, signature=self._signature(), folder=checkpoint_dir, keep=s.keep,
                  keep_beyond=True, checkpoint_every=s.checkpoint_every, scaler=self._scaler, reseed=s.seed + 1,
                  desc="LoRA fine-tuning (targets)", progress=progress)
        model.eval()
        return self

    # ---------------------------------------------------------- checkpoints
    def _signature(self) -> dict:
        return {"settings": json.loads(json.dumps(asdict(self.settings))), "model": self.backend.name}

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return self.adapter_state()

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        with _quiet_peft():
            set_peft_model_state_dict(self.backend.model, tensors)

    def keep_model(self, folder: Path, targets: int) -> None:
        self.save_adapters(folder / f"adapters-{targets}")
