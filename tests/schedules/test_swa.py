"""swa_lr: torch's argument checks and wording, the anneal_epochs=0 quirk, hand math, against torch's
SWALR (parity case ``swa_lr``), jit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest

import losslab_jax as ll
from tests.helpers import assert_close


def test_bad_arguments_use_torch_wording():
  with pytest.raises(ValueError, match="anneal_strategy must be one of 'cos' or 'linear', instead got exp"):
    ll.schedules.swa_lr(0.1, 0.01, anneal_strategy="exp")
  with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0, got -1"):
    ll.schedules.swa_lr(0.1, 0.01, anneal_epochs=-1)
  with pytest.raises(ValueError, match="finite"):
    ll.schedules.swa_lr(math.nan, 0.01)


def test_hand_math_cos_and_the_zero_epochs_quirk():
  s = ll.schedules.swa_lr(1.0, 0.0, anneal_epochs=4)
  expected = [1.0] + [1 - (1 - math.cos(math.pi * k / 4)) / 2 for k in (1, 2, 3)] + [0.0, 0.0]
  assert_close(jnp.stack([s(k) for k in range(6)]), expected, rtol=1e-14, atol=1e-16)
  assert float(ll.schedules.swa_lr(1.0, 0.25, anneal_epochs=0)(0)) == 0.25   # torch: swa_lr at once


@pytest.mark.parametrize("epochs,strategy", [(0, "cos"), (3, "linear"), (7, "cos")])
def test_equals_torch_swalr(epochs, strategy):
  torch = pytest.importorskip("torch")
  p = torch.zeros(1, requires_grad=True)
  opt = torch.optim.SGD([p], lr=0.3)
  sched = torch.optim.swa_utils.SWALR(opt, swa_lr=0.02, anneal_epochs=epochs, anneal_strategy=strategy)
  s = ll.schedules.swa_lr(0.3, 0.02, anneal_epochs=epochs, anneal_strategy=strategy)
  values = jax.jit(s)(jnp.arange(12))
  for k in range(12):
    assert_close(values[k], sched.get_last_lr()[0], rtol=1e-15)
    opt.step()
    sched.step()
