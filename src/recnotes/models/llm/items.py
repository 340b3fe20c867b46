"""The LLM's own view of each film: a vector per item, read off the pretrained model.

:func:`llm_item_vectors` gives each film the final hidden state of the LLM at the last
token of the film's line as the list prompt writes it (title, year and the line's
newline), read alone: the item embedding of HLLM's item model, here from the pinned
decoder.  GPTRec can start its item embeddings from them (``item_init="llm"``), as it
can from a sentence encoder's vectors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .likelihood import decoder_and_head, pad_right
from .prompts import continuation_text

__all__ = ["llm_item_vectors"]


@torch.no_grad()
def llm_item_vectors(backend, titles: Sequence[str], batch: int = 64) -> np.ndarray:
    """``[len(titles), hidden]`` float32: for each title (``titles[0]`` is the padding row and
    gets zeros), the decoder's final hidden state at the last token of its list line, the line
    tokenized as a prompt (after the tokenizer's BOS token where it adds one) and read alone.
    Lines are batched, right-padded; a line's state depends on its own tokens only."""
    decoder, _ = decoder_and_head(backend.model)
    ids = [backend.prompt_ids(continuation_text(t, "list")) for t in titles[1:]]
    hidden = int(backend.model.config.hidden_size)
    out = np.zeros((len(titles), hidden), dtype=np.float32)
    pad = int(backend.tokenizer.pad_token_id)
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        tokens, mask = pad_right(chunk, pad)
        states = decoder(input_ids=tokens.to(backend.device), attention_mask=mask.to(backend.device),
                         use_cache=False).last_hidden_state
        last = torch.tensor([len(c) - 1 for c in chunk], device=states.device)
        out[1 + start:1 + start + len(chunk)] = states[torch.arange(len(chunk)), last].float().cpu().numpy()
    return out
