"""L-BFGS with torch's semantics (``torch.optim.LBFGS``), including its strong-Wolfe line search.

One ``update`` is one torch ``step(closure)``: up to ``max_iter`` inner iterations, each of which
may call the loss function, all inside ``lax.while_loop`` so the whole step jits. The parameters
are handled as one flat vector (``jax.flatten_util.ravel_pytree``, which orders leaves as
``jax.tree.leaves`` does), like torch's ``_gather_flat_grad``; the history lives in fixed-size
``[history_size, n]`` ring buffers.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from losslab_jax.optim import _common


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


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, max_ls, c1=1e-4, c2=0.9, tolerance_change=1e-9):
  """torch's ``_strong_wolfe`` (bracketing, then zoom); returns ``(f_new, g_new, t, ls_func_evals)``.

  ``obj_func(x, t, d) -> (loss, flat_grad)`` evaluates at ``x + t * d``. ``max_ls`` may be traced.
  """
  dt = d.dtype
  c1, c2, tolerance_change = (jnp.asarray(v, dt) for v in (c1, c2, tolerance_change))
  zero = jnp.zeros([], dt)
  d_norm = jnp.max(jnp.abs(d))
  f_new, g_new = obj_func(x, t, d)
  gtd_new = g_new @ d
  i32 = lambda v: jnp.asarray(v, jnp.int32)  # noqa: E731

  # ---- bracketing phase ----------------------------------------------------------------------
  # carry: (t_prev, f_prev, g_prev, gtd_prev, t, f_new, g_new, gtd_new, ls_iter, evals, broke, done, bracket)
  def pair(a, b):
    return jnp.stack([a, b])

  empty = _Bracket(pair(zero, zero), pair(zero, zero), pair(g, g), pair(zero, zero))
  carry0 = (zero, f, g, gtd, t, f_new, g_new, gtd_new, i32(0), i32(1), False, False, empty)

  def bracket_cond(c):
    return (c[8] < max_ls) & ~c[10]

  def bracket_body(c):
    t_prev, f_prev, g_prev, gtd_prev, t, f_new, g_new, gtd_new, ls_iter, evals, _, _, br = c
    armijo_fail = (f_new > (f + c1 * t * gtd)) | ((ls_iter > 1) & (f_new >= f_prev))
    wolfe = ~armijo_fail & (jnp.abs(gtd_new) <= -c2 * gtd)
    rising = ~armijo_fail & ~wolfe & (gtd_new >= 0)
    broke = armijo_fail | wolfe | rising

    def stop(_):
      two = _Bracket(pair(t_prev, t), pair(f_prev, f_new), pair(g_prev, g_new), pair(gtd_prev, gtd_new))
      one = _Bracket(pair(t, t), pair(f_new, f_new), pair(g_new, g_new), pair(gtd_new, gtd_new))
      new = jax.tree.map(lambda a, b: jnp.where(wolfe, b, a), two, one)
      return (t_prev, f_prev, g_prev, gtd_prev, t, f_new, g_new, gtd_new, ls_iter, evals, True, wolfe, new)

    def go_on(_):
      min_step = t + 0.01 * (t - t_prev)
      max_step = t * 10
      t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
      f_next, g_next = obj_func(x, t_next, d)
      return (t, f_new, g_new, gtd_new, t_next, f_next, g_next, g_next @ d, ls_iter + 1, evals + 1,
              False, False, br)

    return lax.cond(broke, stop, go_on, None)

  c = lax.while_loop(bracket_cond, bracket_body, carry0)
  _, _, _, _, t, f_new, g_new, gtd_new, ls_iter, evals, _, done, br = c
  # reached max number of iterations (torch: `ls_iter == max_ls`; ">=" also covers max_ls <= 0)
  exhausted = ls_iter >= max_ls
  br = jax.tree.map(lambda a, b: jnp.where(exhausted, b, a), br,
                    _Bracket(pair(zero, t), pair(f, f_new), pair(g, g_new), pair(gtd, gtd_new)))

  # ---- zoom phase ----------------------------------------------------------------------------
  low0 = jnp.where(br.f[0] <= br.f[1], i32(0), i32(1))

  def zoom_cond(c):
    br, _, ls_iter, _, done, _ = c
    small = jnp.abs(br.t[1] - br.t[0]) * d_norm < tolerance_change
    return ~done & (ls_iter < max_ls) & ~small

  def zoom_body(c):
    br, low, ls_iter, evals, done, insuf_progress = c
    high = 1 - low
    t = _cubic_interpolate(br.t[0], br.f[0], br.gtd[0], br.t[1], br.f[1], br.gtd[1])
    b_max, b_min = _py_max(br.t[0], br.t[1]), _py_min(br.t[0], br.t[1])
    eps = 0.1 * (b_max - b_min)
    near = _py_min(b_max - t, t - b_min) < eps
    move = near & (insuf_progress | (t >= b_max) | (t <= b_min))
    t_moved = jnp.where(jnp.abs(t - b_max) < jnp.abs(t - b_min), b_max - eps, b_min + eps)
    t = jnp.where(move, t_moved, t)
    insuf_progress = near & ~move
    f_new, g_new = obj_func(x, t, d)
    gtd_new = g_new @ d
    ls_iter, evals = ls_iter + 1, evals + 1

    armijo_fail = (f_new > (f + c1 * t * gtd)) | (f_new >= br.f[low])
    wolfe = ~armijo_fail & (jnp.abs(gtd_new) <= -c2 * gtd)
    copy_low = ~armijo_fail & ~wolfe & (gtd_new * (br.t[high] - br.t[low]) >= 0)
    new_point = _Bracket(t, f_new, g_new, gtd_new)
    low_point = jax.tree.map(lambda a: a[low], br)
    # Armijo failed: the new point replaces high. Otherwise: maybe old low -> high; new point -> low.
    high_val = jax.tree.map(lambda n, l, h: jnp.where(armijo_fail, n, jnp.where(copy_low, l, h)),
                            new_point, low_point, jax.tree.map(lambda a: a[high], br))
    low_val = jax.tree.map(lambda n, l: jnp.where(armijo_fail, l, n), new_point, low_point)
    br = jax.tree.map(lambda a, h, l: a.at[high].set(h).at[low].set(l), br, high_val, low_val)
    low = jnp.where(armijo_fail, jnp.where(br.f[0] <= br.f[1], i32(0), i32(1)), low)
    return br, low, ls_iter, evals, done | wolfe, insuf_progress

  br, low, ls_iter, evals, _, _ = lax.while_loop(zoom_cond, zoom_body,
                                                  (br, low0, ls_iter, evals, done, jnp.asarray(False)))
  return br.f[low], br.g[low], br.t[low], evals


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
          jnp.where(full, history_len, history_len + 1), jnp.where(full, (history_start + 1) % size, history_start))


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


def _check_lbfgs(lr, max_iter, max_eval, history_size, line_search_fn) -> int:
  _common.check_nonneg("learning rate", lr)
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


def lbfgs(lr: _common.ScalarOrSchedule = 1.0, max_iter: int = 20, max_eval: int | None = None,
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
    Parity (end to end, each side computing its own gradients): float64 <= 1e-10, float32 <= 1e-5
    (case ``lbfgs``).

  Examples:
    >>> import jax, jax.numpy as jnp, optax
    >>> import losslab_jax as ll
    >>> loss_fn = lambda p: jnp.sum((p - jnp.array([1.0, -2.0])) ** 2 * jnp.array([1.0, 10.0]))
    >>> tx = ll.optim.lbfgs(line_search_fn="strong_wolfe")
    >>> params = jnp.zeros(2)
    >>> value, grads = jax.value_and_grad(loss_fn)(params)
    >>> updates, state = tx.update(grads, tx.init(params), params, value=value, value_fn=loss_fn)
    >>> print(jnp.round(optax.apply_updates(params, updates), 4))
    [ 1. -2.]

  References:
    Nocedal and Wright, *Numerical Optimization*, 2nd ed., algorithms 7.4 (two-loop recursion)
    and 3.5-3.6 (strong-Wolfe line search), 2006.
  """
  max_eval = _check_lbfgs(lr, max_iter, max_eval, history_size, line_search_fn)

  def init_fn(params):
    flat, _ = ravel_pytree(params)
    n, dt = flat.shape[0], flat.dtype
    i0 = jnp.zeros([], jnp.int32)
    return LBFGSState(step=i0, func_evals=i0, n_iter=i0, d=jnp.zeros([n], dt), t=jnp.zeros([], dt),
                      old_dirs=jnp.zeros([history_size, n], dt), old_stps=jnp.zeros([history_size, n], dt),
                      ro=jnp.zeros([history_size], dt), H_diag=jnp.ones([], dt),
                      prev_flat_grad=jnp.zeros([n], dt), prev_loss=jnp.zeros([], dt),
                      history_len=i0, history_start=i0)

  def update_fn(updates, state, params=None, *, value=None, grad=None, value_fn=None, **extra_args):
    del grad, extra_args
    if params is None:
      raise ValueError("lbfgs: expected the current parameters, `update(grads, state, params, value=...,"
                       " value_fn=loss_fn)`")
    if value_fn is None or not callable(value_fn):
      raise ValueError("lbfgs: expected `value_fn=loss_fn` (params -> scalar loss, torch's closure),"
                       f" got {value_fn!r}")
    x0, unravel = ravel_pytree(params)
    dt = x0.dtype
    if value is None:
      value = value_fn(params)
    flat_grad = ravel_pytree(updates)[0].astype(dt)
    val_grad = jax.value_and_grad(lambda x: value_fn(unravel(x)))

    def evaluate(x):
      loss, g = val_grad(x)
      return jnp.asarray(loss).astype(dt), g.astype(dt)

    def obj_func(x, t, d):
      return evaluate(x + t * d)

    lr_k = _common.resolve(lr, state.step).astype(dt)
    tol_grad, tol_change = jnp.asarray(tolerance_grad, dt), jnp.asarray(tolerance_change, dt)
    one = jnp.ones([], dt)

    def body(c: _Carry) -> _Carry:
      n_iter, state_n_iter = c.n_iter + 1, c.state_n_iter + 1
      first = state_n_iter == 1

      # ---- direction --------------------------------------------------------------------------
      def first_direction(c):
        zi = jnp.zeros([], jnp.int32)
        return -c.g, c.old_dirs, c.old_stps, c.ro, zi, zi, one

      def lbfgs_direction(c):
        y = c.g - c.prev_flat_grad
        s = c.d * c.t
        ys = y @ s
        hist = (c.old_dirs, c.old_stps, c.ro, c.history_len, c.history_start)
        hist = lax.cond(ys > 1e-10, lambda h: _push(*h, y, s, 1.0 / ys), lambda h: h, hist)
        H_diag = jnp.where(ys > 1e-10, ys / (y @ y), c.H_diag)
        d = _two_loop(c.g, *hist, H_diag)
        return (d, *hist, H_diag)

      d, old_dirs, old_stps, ro, history_len, history_start, H_diag = lax.cond(
          first, first_direction, lbfgs_direction, c)
      prev_flat_grad, prev_loss = c.g, c.loss

      # ---- step length ------------------------------------------------------------------------
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

    opt_cond = jnp.max(jnp.abs(flat_grad)) <= tol_grad
    carry = _Carry(x=x0, loss=jnp.asarray(value).astype(dt), g=flat_grad, opt_cond=opt_cond, d=state.d,
                   t=state.t, old_dirs=state.old_dirs, old_stps=state.old_stps, ro=state.ro,
                   history_len=state.history_len, history_start=state.history_start, H_diag=state.H_diag,
                   prev_flat_grad=state.prev_flat_grad, prev_loss=state.prev_loss,
                   n_iter=jnp.zeros([], jnp.int32), state_n_iter=state.n_iter,
                   current_evals=jnp.ones([], jnp.int32), func_evals=state.func_evals + 1, stop=opt_cond)
    c = lax.while_loop(lambda c: ~c.stop, body, carry)
    new_params = unravel(c.x)
    out = jax.tree.map(lambda new, p: (new - p).astype(p.dtype), new_params, params)
    new_state = LBFGSState(step=optax.safe_increment(state.step), func_evals=c.func_evals,
                           n_iter=c.state_n_iter, d=c.d, t=c.t, old_dirs=c.old_dirs, old_stps=c.old_stps,
                           ro=c.ro, H_diag=c.H_diag, prev_flat_grad=c.prev_flat_grad, prev_loss=c.prev_loss,
                           history_len=c.history_len, history_start=c.history_start)
    return out, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)

