"""Models whose layers mix sliding-window and full attention (Gemma 3) score as one plain
forward pass does: the packed scorer's block mask also hides keys beyond each sliding layer's
window, and the shared bottom blocks (``LowerLayers``) keep each block's kind of attention.

The reference is transformers' own forward over ``prompt + continuation``, with the masks the
model builds itself; a tiny random Gemma 3 (window of 6 tokens) makes prompts far longer than
the window cheap, and the pinned Gemma 3 270M is checked once past its 512-token window.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recnotes.models.llm.likelihood import LowerLayers, score_naive, score_packed, sliding_window


def tiny_gemma(window: int = 6):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=5,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, sliding_window=window,
                              layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                           "sliding_attention", "full_attention"],
                              max_position_embeddings=128, attn_implementation="sdpa")
    return Gemma3ForCausalLM(config).eval()


def reference(model, prefix, conts):
    out = []
    for cont in conts:
        ids = torch.tensor([prefix + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        out.append(sum(float(logp[len(prefix) - 1 + k, t]) for k, t in enumerate(cont)))
    return np.asarray(out)


BATCH = [(list(range(3, 23)), [[30, 31, 32], [40], [50, 51, 52, 53, 54, 55, 56, 57]]),  # prompt 20 > window 6
         (list(range(60, 64)), [[5, 6], [7, 8, 9]])]


def test_packed_scores_of_a_sliding_window_model_equal_its_own_forward():
    model = tiny_gemma()
    assert sliding_window(model) == 6
    got = score_packed(model, BATCH, torch.device("cpu"))
    for (prefix, conts), (sums, lengths) in zip(BATCH, got):
        np.testing.assert_allclose(sums, reference(model, prefix, conts), atol=1e-4)
        np.testing.assert_array_equal(lengths, [len(c) for c in conts])
    # the window matters here: the same mask without it gives other numbers
    wide = tiny_gemma(window=1000)
    far = score_packed(wide, BATCH[:1], torch.device("cpu"))[0][0]
    assert np.abs(far - got[0][0]).max() > 1e-3


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_shared_bottom_blocks_keep_each_blocks_kind_of_attention(n):
    """Splitting the blocks anywhere (not only at a multiple of the sliding pattern) gives the
    plain forward's scores, first from the bottom blocks run now and then from the kept ones."""
    model = tiny_gemma()
    types = list(model.config.layer_types)
    lower = LowerLayers(n)
    for _ in range(2):
        got = score_packed(model, BATCH, torch.device("cpu"), lower=lower)
        for (prefix, conts), (sums, _) in zip(BATCH, got):
            np.testing.assert_allclose(sums, reference(model, prefix, conts), atol=1e-4)
    assert (lower.misses, lower.hits) == (1, 1)
    assert model.config.layer_types == types  # put back


def test_models_without_sliding_layers_get_one_mask():
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1))
    assert sliding_window(llama) is None
    assert sliding_window(None) is None


def test_the_pinned_gemma_scores_past_its_window_as_its_own_forward():
    """Gemma 3 270M from its pinned GGUF asset: a prompt of more than 512 tokens (its sliding
    window), packed scores against the naive path (one full forward per candidate)."""
    from recnotes.models.llm import load_backend

    backend = load_backend("gemma3-270m-gguf", device="cpu", dtype=torch.float32)
    assert backend.name == "Gemma-3-270M-Q4_K_M" and sliding_window(backend.model) == 512
    assert 260e6 < sum(p.numel() for p in backend.model.parameters()) < 275e6
    prompt = "".join(f"Film number {i} of the list (19{i % 100:02d})\n" for i in range(60))
    prefix = backend.prompt_ids(prompt)
    assert len(prefix) > 600
    conts = backend.continuation_ids(["Toy Story (1995)\n", "Heat (1995)\n", "Fargo (1996)\n"])
    packed = score_packed(backend.model, [(prefix, conts)], torch.device("cpu"))[0][0]
    naive = score_naive(backend.model, prefix, conts, torch.device("cpu"))[0]
    np.testing.assert_allclose(packed, naive, atol=2e-3)
