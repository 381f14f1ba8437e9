"""check_convergence on hand-made histories, and against torch's ReduceLROnPlateau bookkeeping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losslab_jax import analysis
from tests.helpers import rng


def _fields(res):
  return (bool(res.converged), bool(res.diverged), float(res.best_loss), int(res.best_step),
          int(res.steps_since_improvement))


@pytest.mark.parametrize("losses, patience, tolerance, expected", [
    # flat after step 2: two bad steps then three
    ([3.0, 2.0, 1.0, 1.0, 1.0], 2, 1e-6, (True, False, 1.0, 2, 2)),
    ([3.0, 2.0, 1.0, 1.0, 1.0], 3, 1e-6, (False, False, 1.0, 2, 2)),
    ([3.0, 2.0, 1.0, 1.0, 1.0, 1.0], 3, 1e-6, (True, False, 1.0, 2, 3)),
    # still falling by more than the tolerance
    ([5.0, 4.0, 3.0, 2.0, 1.0], 2, 1e-6, (False, False, 1.0, 4, 0)),
    # falls 0.4 per step, tolerance 1.0: 4.6 and 4.2 are not better than 5 - 1; 3.8 is
    ([5.0, 4.6, 4.2, 3.8, 3.4], 2, 1.0, (False, False, 3.8, 3, 1)),
    ([5.0, 4.6, 4.2, 3.8, 3.4, 3.0], 2, 1.0, (True, False, 3.8, 3, 2)),
    # a rise is not an improvement: no progress for 3 steps
    ([1.0, 2.0, 3.0, 4.0], 3, 0.0, (True, False, 1.0, 0, 3)),
    # a non-finite loss is never converged
    ([1.0, np.nan, 1.0, 1.0], 2, 0.0, (False, True, 1.0, 0, 3)),
    ([1.0, 1.0, np.inf], 1, 0.0, (False, True, 1.0, 0, 2)),
    # too short to tell
    ([1.0], 1, 0.0, (False, False, 1.0, 0, 0)),
])
def test_hand_made_histories(losses, patience, tolerance, expected):
  res = analysis.check_convergence(np.asarray(losses, np.float64), patience=patience, tolerance=tolerance)
  assert _fields(res) == expected
  assert res.final_loss == losses[-1] or np.isnan(losses[-1])


def test_empty_history_and_python_list():
  res = analysis.check_convergence([], patience=1)
  assert not bool(res.converged) and int(res.best_step) == -1 and np.isnan(float(res.final_loss))
  assert bool(analysis.check_convergence([2, 1, 1, 1], patience=2).converged)  # integers work


def test_steps_since_improvement_equals_torch_num_bad_epochs():
  torch = pytest.importorskip("torch")
  r = rng(0)
  history = np.round(np.cumsum(r.normal(-0.05, 0.2, size=60)) + 10.0, 2)
  param = torch.nn.Parameter(torch.zeros(1))
  sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
      torch.optim.SGD([param], lr=1.0), mode="min", threshold=0.1, threshold_mode="abs", patience=1000)
  for t, loss in enumerate(history):
    sched.step(float(loss))
    if t in (19, 39, 59):  # a few prefixes: each length compiles its own scan
      res = analysis.check_convergence(history[: t + 1], patience=5, tolerance=0.1)
      assert int(res.steps_since_improvement) == sched.num_bad_epochs, t
      assert float(res.best_loss) == sched.best, t


def test_jit():
  f = jax.jit(analysis.check_convergence, static_argnames=("patience", "tolerance"))
  res = f(jnp.array([3.0, 2.0, 1.0, 1.0, 1.0]), patience=2, tolerance=1e-6)
  assert bool(res.converged) and int(res.best_step) == 2 and res.patience == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(losses=[[1.0, 2.0]]), "losses"),
    (dict(losses=[1.0], patience=0), "patience"),
    (dict(losses=[1.0], patience=2.5), "patience"),
    (dict(losses=[1.0], tolerance=-1.0), "tolerance"),
])
def test_bad_inputs_raise(kwargs, match):
  with pytest.raises(ValueError, match=f"check_convergence: expected `{match}`"):
    analysis.check_convergence(**kwargs)
