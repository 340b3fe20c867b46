"""The precision policy per device: bf16 where the hardware multiplies it (CUDA compute
capability 8.0+, CPUs with AVX512-BF16 or AMX), float16 with loss scaling on older CUDA cards
(Colab's T4), float32 elsewhere; and loss scaling that does not change what training computes."""

from __future__ import annotations

import os

import pytest
import torch

from recnotes.device import (Precision, autocast_dtype, inference_dtype, native_cpu_bf16, precision,
                             training_dtype)

torch.set_num_threads(1)


@pytest.fixture
def no_overrides(monkeypatch):
    monkeypatch.delenv("RECNOTES_LLM_DTYPE", raising=False)
    monkeypatch.delenv("RECNOTES_TRAIN_DTYPE", raising=False)


@pytest.mark.parametrize("capability, card, native", [((7, 5), "T4", False), ((7, 0), "V100", False),
                                                      ((8, 0), "A100", True), ((8, 9), "L4", True),
                                                      ((9, 0), "H100", True)])
def test_each_cuda_card_gets_bf16_only_where_it_is_native(monkeypatch, no_overrides, capability, card, native):
    asked = []

    def capability_of(index=None):
        asked.append(index)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    cuda = torch.device("cuda")
    policy = precision(cuda)
    want = torch.bfloat16 if native else torch.float16
    assert (policy.autocast, policy.head, policy.inference) == (want, want, want), card
    assert policy.loss_scaling is (not native)  # float16's range needs it, bf16's does not
    assert f"{capability[0]}.{capability[1]}" in policy.reason
    assert autocast_dtype(cuda) == training_dtype(cuda) == inference_dtype(cuda) == want
    precision(torch.device("cuda:1"))
    assert asked[-1] == 1  # the card asked about, not the first one


def test_cpus_get_bf16_only_where_the_flags_say_it_is_native(no_overrides):
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else []
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert native_cpu_bf16() == native
    policy = precision("cpu")
    assert policy.autocast is None and not policy.loss_scaling
    assert policy.head == policy.inference == (torch.bfloat16 if native else torch.float32)
    assert precision("mps") == Precision(None, torch.float32, torch.float32, False, "MPS without native bf16: float32")


def test_the_environment_overrides_the_policy_and_refuses_unknown_dtypes(monkeypatch):
    monkeypatch.setenv("RECNOTES_LLM_DTYPE", "float16")
    assert inference_dtype(torch.device("cpu")) == torch.float16
    monkeypatch.setenv("RECNOTES_TRAIN_DTYPE", "float32")
    assert training_dtype(torch.device("cpu")) == torch.float32
    monkeypatch.setenv("RECNOTES_LLM_DTYPE", "half")
    with pytest.raises(ValueError, match="float32, bfloat16, float16"):
        inference_dtype(torch.device("cpu"))


def test_loss_scaling_leaves_float32_training_unchanged(monkeypatch):
    """The trainer's loss scaler multiplies the loss by a power of two and divides the gradients
    by it before clipping and the step: exact in float32, so the weights are those of an
    unscaled run (the path a T4 takes, here on the CPU)."""
    import recnotes.models.training as trainer
    from test_train import _tiny, cycle_split

    split = cycle_split()
    plain = _tiny(0, build_for=split, max_epochs=2, grad_clip=1.0)
    trainer.train(plain, split, plain.train_config, progress=False)
    scaled_policy = Precision(None, torch.float32, torch.float32, True, "test: float32 with loss scaling")
    monkeypatch.setattr(trainer, "precision", lambda device: scaled_policy)
    made = []
    real = torch.amp.GradScaler

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", spy)
    scaled = _tiny(0, build_for=split, max_epochs=2, grad_clip=1.0)
    trainer.train(scaled, split, scaled.train_config, progress=False)
    assert made and made[0].is_enabled() and made[0].get_scale() > 1
    for (name, a), b in zip(plain.state_dict().items(), scaled.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
