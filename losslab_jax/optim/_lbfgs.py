"""L-BFGS with torch's semantics (``torch.optim.LBFGS``), including its strong-Wolfe line search.

One ``update`` is one torch ``step(closure)``: up to ``max_iter`` inner iterations, each of which
may call the loss function, all inside ``lax.while_loop`` so the whole step jits. The parameters
are handled as one flat vector (``jax.flatten_util.ravel_pytree``, which orders leaves as
``jax.tree.leaves`` does), like torch's ``_gather_flat_grad``; the history lives in fixed-size
``[history_size, n]`` ring buffers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from losslab_jax.optim import _common
from losslab_jax.optim._common import ScalarOrSchedule


class LBFGSState(NamedTuple):
  """State of :func:`lbfgs`; the field names are the keys of torch's LBFGS state.

  Attributes:
    step: number of ``update`` calls (torch ``step()`` calls), scalar int32; indexes an ``lr``
      schedule.
    func_evals: total number of loss evaluations so far, scalar int32.
    n_iter: total number of L-BFGS iterations so far, scalar int32.
    d: last search direction, ``[n]`` (``n`` = number of parameter elements).
    t: last step length, scalar.
    old_dirs: gradient differences ``y``, ``[history_size, n]`` ring buffer.
    old_stps: steps ``s``, ``[history_size, n]`` ring buffer.
    ro: ``1 / (y . s)``, ``[history_size]`` ring buffer.
    H_diag: scale of the initial inverse-Hessian approximation, scalar.
    prev_flat_grad: gradient at the start of the last iteration, ``[n]``.
    prev_loss: loss at the start of the last iteration, scalar.
    history_len: number of stored ``(y, s)`` pairs (torch's ``len(old_dirs)``), scalar int32.
    history_start: ring index of the oldest stored pair, scalar int32.
  """

  step: jax.Array
  func_evals: jax.Array
  n_iter: jax.Array
  d: jax.Array
  t: jax.Array
  old_dirs: jax.Array
  old_stps: jax.Array
  ro: jax.Array
  H_diag: jax.Array
  prev_flat_grad: jax.Array
  prev_loss: jax.Array
  history_len: jax.Array
  history_start: jax.Array


# ---------------------------------------------------------------------------------------------
# Python's min/max on two numbers: the first argument unless the second is strictly smaller/larger
# (torch's line search mixes Python floats and 0-d tensors; this keeps its NaN behaviour).


def _py_max(a, b):
  return jnp.where(b > a, b, a)


def _py_min(a, b):
  return jnp.where(b < a, b, a)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
  """torch's ``_cubic_interpolate``: minimiser of the cubic through two points, clamped to bounds."""
  if bounds is not None:
    xmin_bound, xmax_bound = bounds
  else:
    xmin_bound, xmax_bound = jnp.where(x1 <= x2, x1, x2), jnp.where(x1 <= x2, x2, x1)
  d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
  d2_square = d1**2 - g1 * g2
  d2 = jnp.sqrt(jnp.where(d2_square >= 0, d2_square, 0))
  min_pos = jnp.where(x1 <= x2,
                      x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
                      x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)))
  clamped = _py_min(_py_max(min_pos, xmin_bound), xmax_bound)
  return jnp.where(d2_square >= 0, clamped, (xmin_bound + xmax_bound) / 2.0)


class _Bracket(NamedTuple):
  t: jax.Array      # [2]
  f: jax.Array      # [2]
  g: jax.Array      # [2, n]
  gtd: jax.Array    # [2]


class _Search(NamedTuple):
  """Carry of the strong-Wolfe search: ``t`` is the trial step evaluated at the top of the next pass."""

  phase: jax.Array      # 0: bracketing, 1: zoom, 2: finished
  t: jax.Array
  t_prev: jax.Array     # bracketing: the previous trial (torch's t_prev, f_prev, g_prev, gtd_prev)
  f_prev: jax.Array
  g_prev: jax.Array
  gtd_prev: jax.Array
  br: _Bracket          # zoom: the bracket, its low end, torch's insuf_progress and done flags
  low: jax.Array
  insuf_progress: jax.Array
  done: jax.Array
  ls_iter: jax.Array
  evals: jax.Array


# Long by design: it follows torch's `_strong_wolfe` line by line (to diff against it), and its
# lax.while_loop phases share the search's constants and carried state in one place.
def _strong_wolfe(obj_func, x, t, d, f, g, gtd, max_ls, c1=1e-4, c2=0.9, tolerance_change=1e-9):
  """torch's ``_strong_wolfe`` (bracketing, then zoom); returns ``(f_new, g_new, t, ls_func_evals)``.

  ``obj_func(x, t, d) -> (loss, flat_grad)`` evaluates at ``x + t * d``; ``max_ls`` may be traced.
  torch's two loops run as one ``lax.while_loop`` that evaluates the objective once per pass, at
  its top, and then does the bookkeeping of the phase it is in, so the objective (usually a whole
  forward and backward pass) is traced and compiled once.
  """
  dt = d.dtype
  c1, c2, tolerance_change = (jnp.asarray(v, dt) for v in (c1, c2, tolerance_change))
  zero = jnp.zeros([], dt)
  i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731
  d_norm = jnp.max(jnp.abs(d))

  def pair(a, b):
    return jnp.stack([a, b])

  def low_of(br):
    return jnp.where(br.f[0] <= br.f[1], i32(0), i32(1))

  def armijo_fails(t, f_new):
    return f_new > (f + c1 * t * gtd)

  def zoom_next(c: _Search) -> _Search:
    """Head of torch's zoom loop: stop, or pick the next trial step (with its boundary safeguard)."""
    br = c.br
    small = jnp.abs(br.t[1] - br.t[0]) * d_norm < tolerance_change
    stop = c.done | (c.ls_iter >= max_ls) | small
    t = _cubic_interpolate(br.t[0], br.f[0], br.gtd[0], br.t[1], br.f[1], br.gtd[1])
    b_max, b_min = _py_max(br.t[0], br.t[1]), _py_min(br.t[0], br.t[1])
    eps = 0.1 * (b_max - b_min)
    near = _py_min(b_max - t, t - b_min) < eps
    move = near & (c.insuf_progress | (t >= b_max) | (t <= b_min))
    t = jnp.where(move, jnp.where(jnp.abs(t - b_max) < jnp.abs(t - b_min), b_max - eps, b_min + eps), t)
    return c._replace(phase=jnp.where(stop, i32(2), i32(1)), t=jnp.where(stop, c.t, t),
                      insuf_progress=jnp.where(stop, c.insuf_progress, near & ~move))

  def bracket_step(c: _Search, f_new, g_new, gtd_new) -> _Search:
    """Body of torch's bracketing loop, for the trial ``c.t`` just evaluated."""
    t = c.t
    exhausted = c.ls_iter >= max_ls
    fail = armijo_fails(t, f_new) | ((c.ls_iter > 1) & (f_new >= c.f_prev))
    wolfe = ~fail & (jnp.abs(gtd_new) <= -c2 * gtd)
    rising = ~fail & ~wolfe & (gtd_new >= 0)
    leave = exhausted | fail | wolfe | rising

    def go_on(c):
      min_step = t + 0.01 * (t - c.t_prev)
      max_step = t * 10
      t_next = _cubic_interpolate(c.t_prev, c.f_prev, c.gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
      return c._replace(t=t_next, t_prev=t, f_prev=f_new, g_prev=g_new, gtd_prev=gtd_new, ls_iter=c.ls_iter + 1)

    def to_zoom(c):
      two = _Bracket(pair(c.t_prev, t), pair(c.f_prev, f_new), pair(c.g_prev, g_new), pair(c.gtd_prev, gtd_new))
      one = _Bracket(pair(t, t), pair(f_new, f_new), pair(g_new, g_new), pair(gtd_new, gtd_new))
      # reached max number of iterations: torch brackets [0, t] (and its zoom loop does not run)
      last = _Bracket(pair(zero, t), pair(f, f_new), pair(g, g_new), pair(gtd, gtd_new))
      br = jax.tree.map(lambda a, b, e: jnp.where(exhausted, e, jnp.where(wolfe, b, a)), two, one, last)
      return zoom_next(c._replace(br=br, low=low_of(br), done=~exhausted & wolfe))

    return lax.cond(leave, to_zoom, go_on, c)

  def zoom_step(c: _Search, f_new, g_new, gtd_new) -> _Search:
    """Second half of torch's zoom loop body, for the trial ``c.t`` just evaluated."""
    br, low, t = c.br, c.low, c.t
    high = 1 - low
    fail = armijo_fails(t, f_new) | (f_new >= br.f[low])
    wolfe = ~fail & (jnp.abs(gtd_new) <= -c2 * gtd)
    copy_low = ~fail & ~wolfe & (gtd_new * (br.t[high] - br.t[low]) >= 0)
    new_point = _Bracket(t, f_new, g_new, gtd_new)
    low_point = jax.tree.map(lambda a: a[low], br)
    # Armijo failed: the new point replaces high. Otherwise: maybe old low -> high; new point -> low.
    high_val = jax.tree.map(lambda n, lo, hi: jnp.where(fail, n, jnp.where(copy_low, lo, hi)),
                            new_point, low_point, jax.tree.map(lambda a: a[high], br))
    low_val = jax.tree.map(lambda n, lo: jnp.where(fail, lo, n), new_point, low_point)
    br = jax.tree.map(lambda a, hi, lo: a.at[high].set(hi).at[low].set(lo), br, high_val, low_val)
    low = jnp.where(fail, low_of(br), low)
    return zoom_next(c._replace(br=br, low=low, done=c.done | wolfe, ls_iter=c.ls_iter + 1))

  def body(c: _Search) -> _Search:
    f_new, g_new = obj_func(x, c.t, d)
    gtd_new = g_new @ d
    c = c._replace(evals=c.evals + 1)
    return lax.cond(c.phase == 0, bracket_step, zoom_step, c, f_new, g_new, gtd_new)

  empty = _Bracket(pair(zero, zero), pair(zero, zero), pair(g, g), pair(zero, zero))
  c = _Search(phase=i32(0), t=t, t_prev=zero, f_prev=f, g_prev=g, gtd_prev=gtd, br=empty, low=i32(0),
              insuf_progress=jnp.asarray(False), done=jnp.asarray(False), ls_iter=i32(0), evals=i32(0))
  c = lax.while_loop(lambda c: c.phase != 2, body, c)
  return c.br.f[c.low], c.br.g[c.low], c.br.t[c.low], c.evals


# ---------------------------------------------------------------------------------------------


def _two_loop(g, old_dirs, old_stps, ro, history_len, history_start, H_diag):
  """torch's two-loop recursion ``d = -H g`` over the stored pairs, oldest first (ring buffer)."""
  size = old_dirs.shape[0]
  idx = lambda i: (history_start + i) % size  # noqa: E731

  def backward(j, carry):
    q, al = carry
    i = history_len - 1 - j
    a = (old_stps[idx(i)] @ q) * ro[idx(i)]
    return q - a * old_dirs[idx(i)], al.at[i].set(a)

  q, al = lax.fori_loop(0, history_len, backward, (-g, jnp.zeros([size], g.dtype)))
  r = q * H_diag

  def forward(i, r):
    be_i = (old_dirs[idx(i)] @ r) * ro[idx(i)]
    return r + (al[i] - be_i) * old_stps[idx(i)]

  return lax.fori_loop(0, history_len, forward, r)


def _push(old_dirs, old_stps, ro, history_len, history_start, y, s, ro_new):
  """Append ``(y, s, ro)``; once ``history_size`` pairs are stored, the oldest is overwritten."""
  size = old_dirs.shape[0]
  full = history_len == size
  k = jnp.where(full, history_start, (history_start + history_len) % size)
  return (old_dirs.at[k].set(y), old_stps.at[k].set(s), ro.at[k].set(ro_new),
          jnp.where(full, history_len, history_len + 1),
          jnp.where(full, (history_start + 1) % size, history_start))


class _Carry(NamedTuple):
  x: jax.Array
  loss: jax.Array
  g: jax.Array
  opt_cond: jax.Array
  d: jax.Array
  t: jax.Array
  old_dirs: jax.Array
  old_stps: jax.Array
  ro: jax.Array
  history_len: jax.Array
  history_start: jax.Array
  H_diag: jax.Array
  prev_flat_grad: jax.Array
  prev_loss: jax.Array
  n_iter: jax.Array          # iterations in this step (torch's local `n_iter`)
  state_n_iter: jax.Array    # global iteration count (torch's state["n_iter"])
  current_evals: jax.Array
  func_evals: jax.Array
  stop: jax.Array


def _check_lbfgs(lr, max_iter, max_eval, history_size, line_search_fn, tolerance_grad=0.0,
                 tolerance_change=0.0) -> int:
  _common.check_nonneg("learning rate", lr)
  _common.check_not_nan("tolerance_grad value", tolerance_grad)
  _common.check_not_nan("tolerance_change value", tolerance_change)
  for name, v in (("max_iter", max_iter), ("history_size", history_size)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"lbfgs: expected `{name}` to be an int >= 1, got {v!r}")
  if max_eval is None:
    max_eval = max_iter * 5 // 4
  if isinstance(max_eval, bool) or not isinstance(max_eval, int):
    raise ValueError(f"lbfgs: expected `max_eval` to be an int or None, got {max_eval!r}")
  if line_search_fn not in (None, "strong_wolfe"):
    raise ValueError(f"lbfgs: expected line_search_fn None or 'strong_wolfe', got {line_search_fn!r}"
                     " (torch: only 'strong_wolfe' is supported)")
  return max_eval


def lbfgs(lr: ScalarOrSchedule = 1.0, max_iter: int = 20, max_eval: int | None = None,
          tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100,
          line_search_fn: str | None = None) -> optax.GradientTransformationExtraArgs:
  """L-BFGS, one ``update`` per torch ``LBFGS.step(closure)``, with torch's exact iteration.

  A quasi-Newton method for full-batch, deterministic objectives: it keeps the last
  ``history_size`` pairs (step, gradient change) and applies the two-loop recursion to get a
  search direction, then takes a fixed step of length ``lr`` or one found by a strong-Wolfe line
  search. Each ``update`` runs up to ``max_iter`` such iterations, evaluating the loss again as
  torch's closure would.

  Driving it (as ``optax.lbfgs`` is driven)::

    tx = ll.optim.lbfgs(line_search_fn="strong_wolfe")
    state = tx.init(params)
    for _ in range(steps):                                  # torch: opt.step(closure)
      value, grads = jax.value_and_grad(loss_fn)(params)
      updates, state = tx.update(grads, state, params, value=value, grad=grads, value_fn=loss_fn)
      params = optax.apply_updates(params, updates)

  ``loss_fn(params) -> scalar`` plays torch's ``closure``; bind data into it with a closure or
  ``functools.partial``. The whole ``update`` jits (``value_fn`` must be a static Python callable,
  so pass it inside the jitted function rather than as a jit argument).

  torch's iteration, repeated while no stopping rule fires::

    g = grad at x;  if max|g| <= tolerance_grad: stop                    (checked once, up front)
    first global iteration:  d = -g, H_diag = 1, history cleared
    otherwise:  y = g - g_prev, s = d * t
                if y.s > 1e-10: push (y, s, 1/y.s) (dropping the oldest), H_diag = y.s / y.y
                d = -H g by the two-loop recursion
    t = min(1, 1/sum|g|) * lr at the first global iteration, else lr
    if g.d > -tolerance_change: stop
    no line search:  x += t d, then re-evaluate (unless this was the max_iter-th iteration)
    strong_wolfe:    (f, g, t) = line search from t (c1=1e-4, c2=0.9), x += t d
    stop if: max_iter iterations | max_eval evaluations | max|g| <= tolerance_grad
             | max|t d| <= tolerance_change | |loss - prev_loss| < tolerance_change

  Args:
    lr: learning rate (step length); a float or a schedule of the number of ``update`` calls.
    max_iter: maximal number of iterations per ``update``.
    max_eval: maximal number of loss evaluations per ``update`` (default ``max_iter * 5 // 4``).
    tolerance_grad: termination tolerance on first-order optimality (max absolute gradient).
    tolerance_change: termination tolerance on function value / parameter changes.
    history_size: number of stored ``(s, y)`` pairs.
    line_search_fn: ``None`` (fixed step ``lr``) or ``"strong_wolfe"``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update(updates, state, params, *,
    value=None, grad=None, value_fn)`` takes

    * ``updates``: the gradient of ``value_fn`` at ``params`` (the closure's first evaluation);
    * ``params``: required;
    * ``value``: ``value_fn(params)``; computed if omitted (one more evaluation);
    * ``grad``: accepted for ``optax.lbfgs`` compatibility and ignored (``updates`` is the gradient);
    * ``value_fn``: required, ``params -> scalar loss``;

    and returns the parameter change of the whole step. The state is an :class:`LBFGSState`.

  Raises:
    ValueError: a negative ``lr`` (``Invalid learning rate``), ``max_iter`` or ``history_size``
      not a positive int, ``max_eval`` not an int, an unknown ``line_search_fn``; at update time,
      no ``params`` or no ``value_fn``.

  Notes:
    Torch twin: ``torch.optim.LBFGS`` (``step(closure)``). Differences: torch's ``maximize=True``
    is not offered (negate the loss). Scalars (loss, step lengths, dot products) are computed in
    the parameter dtype; torch keeps some of them as Python doubles, so float32 runs agree to
    rounding, not bit for bit. The strong-Wolfe search uses ``tolerance_change=1e-9`` whatever the
    optimizer's, as torch does (it does not pass its own). The history is preallocated:
    ``2 * history_size * n`` elements, which torch reaches only once its history is full.
    ``optax.lbfgs`` is a different algorithm: one iteration per update, a zoom line search,
    memory 10.
    Parity (end to end, each side computing its own gradients): float64 <= 1e-10 (cases ``lbfgs``,
    ``lbfgs_default``); float32 <= 1e-3 (case ``lbfgs``), because re-evaluating the loss along the
    way amplifies ulp-level gradient differences: torch float32 itself differs from torch float64
    by up to 7.9e-5 on those configs.

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> loss_fn = lambda p: jnp.sum((p - jnp.array([1.0, -2.0])) ** 2 * jnp.array([1.0, 10.0]))
    >>> tx = ll.optim.lbfgs(line_search_fn="strong_wolfe")
    >>> params = jnp.zeros(2, jnp.float32)
    >>> value, grads = jax.value_and_grad(loss_fn)(params)
    >>> updates, state = tx.update(grads, tx.init(params), params, value=value, value_fn=loss_fn)
    >>> print(jnp.round(optax.apply_updates(params, updates), 4))
    [ 1. -2.]

  References:
    Nocedal and Wright, *Numerical Optimization*, 2nd ed., algorithms 7.4 (two-loop recursion)
    and 3.5-3.6 (strong-Wolfe line search), 2006.
  """
  max_eval = _check_lbfgs(lr, max_iter, max_eval, history_size, line_search_fn, tolerance_grad, tolerance_change)

  def init_fn(params):
    return _lbfgs_init(params, history_size)

  def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
    del grad, extra_args
    value_fn = _check_update_args(params, value_fn)
    _common.check_updates("lbfgs", updates, params, "the params")
    x0, unravel = ravel_pytree(params)
    dt = x0.dtype
    if value is None:
      value = value_fn(params)
    flat_grad = ravel_pytree(updates)[0].astype(dt)
    val_grad = jax.value_and_grad(lambda x: value_fn(unravel(x)))

    def evaluate(x):
      loss, g = val_grad(x)
      return jnp.asarray(loss).astype(dt), g.astype(dt)

    lr_k = _common.resolve(lr, state.step).astype(dt)
    tol_grad, tol_change = jnp.asarray(tolerance_grad, dt), jnp.asarray(tolerance_change, dt)
    carry = _initial_carry(x0, jnp.asarray(value).astype(dt), flat_grad, state, tol_grad)
    c = _iterate(evaluate, carry, lr_k, tol_grad, tol_change, max_iter, max_eval, line_search_fn)
    new_params = unravel(c.x)
    out = jax.tree.map(lambda new, p: (new - p).astype(p.dtype), new_params, params)
    return out, _final_state(state, c)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _lbfgs_init(params, history_size: int) -> LBFGSState:
  """The initial state: empty history (preallocated), no iteration yet."""
  flat, _ = ravel_pytree(params)
  n, dt = flat.shape[0], flat.dtype
  i0 = jnp.zeros([], jnp.int32)
  return LBFGSState(step=i0, func_evals=i0, n_iter=i0, d=jnp.zeros([n], dt), t=jnp.zeros([], dt),
                    old_dirs=jnp.zeros([history_size, n], dt), old_stps=jnp.zeros([history_size, n], dt),
                    ro=jnp.zeros([history_size], dt), H_diag=jnp.ones([], dt),
                    prev_flat_grad=jnp.zeros([n], dt), prev_loss=jnp.zeros([], dt),
                    history_len=i0, history_start=i0)


def _check_update_args(params, value_fn) -> Callable:
  """``value_fn``: ``update`` needs the parameters and the loss function (torch's closure)."""
  if params is None:
    raise ValueError("lbfgs: expected the current parameters, `update(grads, state, params, value=...,"
                     " value_fn=loss_fn)`")
  if value_fn is None or not callable(value_fn):
    raise ValueError("lbfgs: expected `value_fn=loss_fn` (params -> scalar loss, torch's closure),"
                     f" got {value_fn!r}")
  return value_fn


def _initial_carry(x0, loss, flat_grad, state: LBFGSState, tol_grad) -> _Carry:
  """The loop's carry at the start of a step: the closure's first evaluation (one) and the state's history."""
  opt_cond = jnp.max(jnp.abs(flat_grad)) <= tol_grad
  return _Carry(x=x0, loss=loss, g=flat_grad, opt_cond=opt_cond, d=state.d,
                t=state.t, old_dirs=state.old_dirs, old_stps=state.old_stps, ro=state.ro,
                history_len=state.history_len, history_start=state.history_start, H_diag=state.H_diag,
                prev_flat_grad=state.prev_flat_grad, prev_loss=state.prev_loss,
                n_iter=jnp.zeros([], jnp.int32), state_n_iter=state.n_iter,
                current_evals=jnp.ones([], jnp.int32), func_evals=state.func_evals + 1, stop=opt_cond)


def _final_state(state: LBFGSState, c: _Carry) -> LBFGSState:
  """The state after a step: its history and counters from the loop's final carry."""
  return LBFGSState(step=_common.increment(state.step), func_evals=c.func_evals,
                    n_iter=c.state_n_iter, d=c.d, t=c.t, old_dirs=c.old_dirs, old_stps=c.old_stps,
                    ro=c.ro, H_diag=c.H_diag, prev_flat_grad=c.prev_flat_grad, prev_loss=c.prev_loss,
                    history_len=c.history_len, history_start=c.history_start)


def _direction(c: _Carry, first, one):
  """torch's search direction: ``-g`` (history cleared) at the first global iteration, else the pair
  ``(y, s)`` is pushed when ``y.s > 1e-10`` and ``d = -H g`` by the two-loop recursion.

  Returns ``(d, old_dirs, old_stps, ro, history_len, history_start, H_diag)``.
  """

  def first_direction(c):
    zi = jnp.zeros([], jnp.int32)
    return -c.g, c.old_dirs, c.old_stps, c.ro, zi, zi, one

  def lbfgs_direction(c):
    y = c.g - c.prev_flat_grad
    s = c.d * c.t
    ys = y @ s
    hist = (c.old_dirs, c.old_stps, c.ro, c.history_len, c.history_start)
    hist = lax.cond(ys > 1e-10, lambda h: _push(h[0], h[1], h[2], h[3], h[4], y, s, 1.0 / ys), lambda h: h, hist)
    H_diag = jnp.where(ys > 1e-10, ys / (y @ y), c.H_diag)
    d = _two_loop(c.g, hist[0], hist[1], hist[2], hist[3], hist[4], H_diag)
    return (d, *hist, H_diag)

  return lax.cond(first, first_direction, lbfgs_direction, c)


def _iterate(evaluate, carry: _Carry, lr_k, tol_grad, tol_change, max_iter: int, max_eval: int,
             line_search_fn: str | None) -> _Carry:
  """torch's ``LBFGS.step`` iteration loop (one ``lax.while_loop``), from ``carry`` until a stopping rule fires."""
  one = jnp.ones([], lr_k.dtype)

  def obj_func(x, t, d):
    return evaluate(x + t * d)

  def body(c: _Carry) -> _Carry:
    n_iter, state_n_iter = c.n_iter + 1, c.state_n_iter + 1
    first = state_n_iter == 1
    d, old_dirs, old_stps, ro, history_len, history_start, H_diag = _direction(c, first, one)
    prev_flat_grad, prev_loss = c.g, c.loss

    # ---- step length --------------------------------------------------------------------------
    inv_l1 = 1.0 / jnp.sum(jnp.abs(c.g))
    t = jnp.where(first, jnp.where(inv_l1 < 1.0, inv_l1, one) * lr_k, lr_k)
    gtd = c.g @ d
    c = c._replace(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, history_len=history_len,
                   history_start=history_start, H_diag=H_diag, prev_flat_grad=prev_flat_grad,
                   prev_loss=prev_loss, n_iter=n_iter, state_n_iter=state_n_iter)

    def take_step(c: _Carry) -> _Carry:
      if line_search_fn == "strong_wolfe":
        loss, g, t, ls_evals = _strong_wolfe(obj_func, c.x, c.t, c.d, c.loss, c.g, gtd,
                                             max_ls=max_eval - c.current_evals)
        x = c.x + t * c.d
        opt_cond = jnp.max(jnp.abs(g)) <= tol_grad
      else:
        t = c.t
        x = c.x + t * c.d

        def reevaluate(_):
          loss, g = evaluate(x)
          return loss, g, jnp.max(jnp.abs(g)) <= tol_grad, jnp.asarray(1, jnp.int32)

        loss, g, opt_cond, ls_evals = lax.cond(
            n_iter != max_iter, reevaluate, lambda _: (c.loss, c.g, c.opt_cond, jnp.asarray(0, jnp.int32)),
            None)
      current_evals = c.current_evals + ls_evals
      stop = ((n_iter == max_iter) | (current_evals >= max_eval) | opt_cond
              | (jnp.max(jnp.abs(c.d * t)) <= tol_change) | (jnp.abs(loss - c.prev_loss) < tol_change))
      return c._replace(x=x, loss=loss, g=g, t=t, opt_cond=opt_cond, current_evals=current_evals,
                        func_evals=c.func_evals + ls_evals, stop=stop)

    # directional derivative below tolerance: stop without moving
    return lax.cond(gtd > -tol_change, lambda c: c._replace(stop=jnp.asarray(True)), take_step, c)

  return lax.while_loop(lambda c: ~c.stop, body, carry)

