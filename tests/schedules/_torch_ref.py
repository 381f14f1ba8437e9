"""torch's learning rates for the schedule tests (one helper for every test module here)."""

import pytest


def torch_lrs(make, K, lr=0.1, steps_per_epoch=1):
  """torch's lr during optimizer step t = 0..K, the scheduler stepped after every `steps_per_epoch`.

  With ``steps_per_epoch=1`` this is ``get_last_lr()[0]`` after k = 0..K scheduler steps.
  """
  torch = pytest.importorskip("torch")
  p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
  opt = torch.optim.SGD([p], lr=lr)
  sched = make(opt, torch.optim.lr_scheduler)
  out = []
  for t in range(K + 1):
    out.append(sched.get_last_lr()[0])
    opt.step()
    if (t + 1) % steps_per_epoch == 0:
      sched.step()
  return out


def eager(schedule, K):
  """``schedule(k)`` for k = 0..K, called eagerly one count at a time."""
  return [float(schedule(k)) for k in range(K + 1)]
