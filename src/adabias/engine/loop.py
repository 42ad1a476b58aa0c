"""The traced training program: one step, blocks of ``save_every`` steps, the scan over blocks.

Step k (k = 0, 1, …) uses, for a mini-batch loss ``loss_fn(params, batch)``, the batch
``k mod m`` of ``batches`` (a pytree whose leaves have leading axis m), passed through
``noise(fold_in(key, k), batch)`` when ``noise`` is given (label noise is expressed this
way). A full-batch loss is ``loss_fn(params)``.

Divergence: when the loss, the gradient or the new parameters are not finite at step k,
the member is marked ``diverged_at = k``, its parameters and optimizer state stop
changing, and later records repeat its last finite parameters. Other members of a
sweep are unaffected, bit for bit: a member's records are the same whether or not
another member diverged.

Checking every step costs little: each block of ``save_every`` steps first runs without
per-step selection, accumulating 0·E and 0·(g + θ) element-wise (NaN exactly where a value
was non-finite); only when that mark is non-finite at the end of the block is the block
run again from its start with the per-step check and selection above. Normal blocks pay
one fused element-wise add per step and one reduction per block; the price is that the
step is compiled twice (unchecked and checked) when ``save_every > 1``.

:func:`start` and :func:`advance` are the two functions :mod:`adabias.engine.driver`
compiles; with ``vmapped=True`` the members of a sweep lie along a leading axis. A run that
streams its records (``on_record``) compiles :func:`advance` with a ``jax.debug.callback``
after each block (:mod:`adabias.engine.stream`); any other run compiles none.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adabias.engine import stream as streaming

PyTree = Any
LossFn = Callable[..., jax.Array]
Metric = Callable[[PyTree], jax.Array]
NoiseFn = Callable[[jax.Array, PyTree], PyTree]


class Trajectory(NamedTuple):
    """Records of a training run at the saved steps 0, s, 2s, …, num_steps.

    Attributes:
      steps: the saved step indices, shape (S,).
      params: parameters at the saved steps (leading axis S), or ``None``.
      loss: training loss at the saved steps (full batch: E(θ); mini-batch: the mean
        over all batches of the noise-free loss).
      metrics: name -> values at the saved steps (leading axis S).
      diverged_at: the step at which the loss, gradient or parameters became
        non-finite, −1 if never.
      final_opt_state: the optimizer state after the last step (after the last finite
        step if the run diverged), e.g. Adam's moments m and v; with the final parameters
        it continues the run.

    In a :class:`~adabias.engine.SweepResult` every field has an extra leading
    member axis.
    """

    steps: jax.Array
    params: Optional[PyTree]
    loss: jax.Array
    metrics: dict
    diverged_at: jax.Array
    final_opt_state: Optional[PyTree] = None

    @property
    def diverged(self) -> jax.Array:
        """Whether the run diverged (per member in a sweep)."""
        return self.diverged_at >= 0

    @property
    def final_params(self) -> PyTree:
        """Parameters at the last saved step."""
        if self.params is None:
            raise ValueError("parameters were not recorded (save_params=False)")
        step_axis = self.steps.ndim - 1  # 1 when a member axis leads (sweeps)
        return jax.tree.map(lambda x: jnp.take(x, -1, axis=step_axis), self.params)

    def to_csv(self, path, *, params: bool = False) -> None:
        """Write the records as CSV, one row per saved step (atomically: temporary file, then
        ``os.replace``). Columns: step, loss, diverged, each metric (an array metric one column
        per entry, ``name[i]``) and, with ``params=True``, each parameter entry
        (``params['w'][0]``); a sweep's trajectory adds ``member`` (use
        :meth:`SweepResult.to_csv` for the grid values and seeds)."""
        from adabias.engine import records

        records.write_csv(path, records.columns(self, labels=self._labels(), params=params))

    def to_dataframe(self, *, params: bool = False):
        """The rows of :meth:`to_csv` as a pandas DataFrame (the extra ``adabias[pandas]``)."""
        from adabias.engine import records

        return records.dataframe(records.columns(self, labels=self._labels(), params=params))

    def _labels(self) -> dict:
        steps = jnp.shape(self.steps)
        return {"member": np.arange(steps[0])} if len(steps) == 2 else {}


class _Carry(NamedTuple):
    """The state carried from step to step (per member)."""

    params: PyTree
    opt_state: PyTree
    diverged_at: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class Program:
    """The static description of a training program (hashable: a jit cache key).

    Built once per :func:`~adabias.engine.run` or :func:`~adabias.engine.sweep` call;
    ``make_optimizer(**hyper)`` builds the optimizer from the (traced) hyperparameters.
    """

    make_optimizer: Callable[..., optax.GradientTransformation]
    loss_fn: LossFn
    noise: Optional[NoiseFn]
    metrics: tuple  # ((name, fn), ...), sorted by name
    save_every: int
    has_batches: bool
    save_params: bool


@dataclasses.dataclass(frozen=True)
class ConstantOptimizer:
    """``make_optimizer()`` for :func:`~adabias.engine.run`: returns the given transform (hashable)."""

    optimizer: optax.GradientTransformation

    def __call__(self) -> optax.GradientTransformation:
        return self.optimizer

    def __hash__(self) -> int:
        return hash(tuple(self.optimizer))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConstantOptimizer) and tuple(self.optimizer) == tuple(other.optimizer)


# --- one member -------------------------------------------------------------------------


def _tree_all_finite(tree: PyTree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _as_dtypes_of(new: PyTree, old: PyTree) -> PyTree:
    """``new`` cast leaf by leaf to the dtypes of ``old`` (strongly typed: astype drops JAX's weak type)."""
    return jax.tree.map(lambda a, b: a.astype(b.dtype), new, old)


def _batch_at(batches: PyTree, k: jax.Array) -> PyTree:
    num_batches = jax.tree.leaves(batches)[0].shape[0]
    return jax.tree.map(lambda x: x[k % num_batches], batches)


def _record(program: Program, params: PyTree, batches: PyTree):
    if program.has_batches:
        losses = jax.vmap(lambda batch: program.loss_fn(params, batch))(batches)
        loss = jnp.mean(losses)
    else:
        loss = program.loss_fn(params)
    metrics = {name: fn(params) for name, fn in program.metrics}
    saved = params if program.save_params else None
    return saved, loss, metrics


def _update(program: Program, hyper: Mapping, batches: PyTree, carry: _Carry, k: jax.Array):
    """Step k without any check: (loss, gradient) at the current params, new params and state."""
    optimizer = program.make_optimizer(**hyper)
    if program.has_batches:
        batch = _batch_at(batches, k)
        if program.noise is not None:
            batch = program.noise(jax.random.fold_in(carry.key, k), batch)
        loss, grads = jax.value_and_grad(program.loss_fn)(carry.params, batch)
    else:
        loss, grads = jax.value_and_grad(program.loss_fn)(carry.params)
    updates, opt_state = optimizer.update(grads, carry.opt_state, carry.params)
    params = optax.apply_updates(carry.params, updates)
    # the carry keeps its dtypes: a float64 hyperparameter (sweeps under x64) must not
    # promote a float32 model's parameters or moments
    return loss, grads, _as_dtypes_of(params, carry.params), _as_dtypes_of(opt_state, carry.opt_state)


def _step(program: Program, hyper: Mapping, batches: PyTree, carry: _Carry, k: jax.Array):
    """Step k with the exact divergence rule: a non-finite step is marked and not taken."""
    loss, grads, params, opt_state = _update(program, hyper, batches, carry, k)
    finite = jnp.isfinite(loss) & _tree_all_finite(grads) & _tree_all_finite(params)
    alive = carry.diverged_at < 0
    keep = alive & finite
    select = lambda new, old: jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)
    diverged_at = jnp.where(alive & ~finite, k, carry.diverged_at).astype(carry.diverged_at.dtype)
    return _Carry(select(params, carry.params), select(opt_state, carry.opt_state), diverged_at, carry.key)


def _start(program: Program, hyper: Mapping, params0: PyTree, key: jax.Array, batches: PyTree):
    """The carry before step 0 and the record at step 0.

    The carry has the types a step returns (no weak types), so every chunk of a run in
    chunks calls the compiled :func:`advance` with the same types: one program, not one
    for the first chunk and another for the rest. (Inside :func:`advance` the scan gave a
    weakly typed carry these types already; the values do not change.)
    """
    optimizer = program.make_optimizer(**hyper)
    state = (params0, optimizer.init(params0))
    params, opt_state = _as_dtypes_of(state, state)
    carry = _Carry(params, opt_state, jnp.array(-1, jnp.int32), key)
    return carry, _record(program, params0, batches)


def _nonfinite_marks(marks, loss: jax.Array, grads: PyTree, params: PyTree):
    """Add 0·E to the scalar mark and 0·(g + θ) to the mark of each leaf (no reduction).

    0·x is 0 for finite x and NaN for x = NaN or ±inf, and a NaN stays in a sum, so after
    a block a mark is NaN exactly where a step had a non-finite loss, gradient entry or
    parameter (or, harmlessly, where g + θ overflowed). Element-wise work fuses with the
    update; the marks are reduced once per block by :func:`_marks_finite`.
    """
    loss_mark, leaf_marks = marks
    leaf_marks = jax.tree.map(lambda m, g, p: m + 0 * (g + p), leaf_marks, grads, params)
    return loss_mark + 0 * loss, leaf_marks


def _marks_finite(marks) -> jax.Array:
    loss_mark, leaf_marks = marks
    return jnp.isfinite(loss_mark + sum(jnp.sum(m) for m in jax.tree.leaves(leaf_marks)))


def _run_block(program: Program, hyper: Mapping, carry: _Carry, batches: PyTree, steps: jax.Array):
    """The steps of one block without per-step checks; also whether it must be re-run exactly.

    A member that had diverged before the block keeps its carry. The flag is raised when a
    live member saw a (possibly) non-finite loss, gradient or parameter in the block.
    """

    def body(state, k):
        current, marks = state
        loss, grads, params, opt_state = _update(program, hyper, batches, current, k)
        marks = _nonfinite_marks(marks, loss, grads, params)
        return (current._replace(params=params, opt_state=opt_state), marks), None

    marks = (jnp.zeros((), jnp.result_type(float)), jax.tree.map(jnp.zeros_like, carry.params))
    (new, marks), _ = jax.lax.scan(body, (carry, marks), steps)
    alive = carry.diverged_at < 0
    new = jax.tree.map(lambda a, b: jnp.where(alive, a, b), new, carry)
    return new, alive & ~_marks_finite(marks)


def _run_block_exact(program: Program, hyper: Mapping, carry: _Carry, batches: PyTree, steps: jax.Array):
    """The steps of one block, each checked (:func:`_step`)."""
    return jax.lax.scan(lambda c, k: (_step(program, hyper, batches, c, k), None), carry, steps)[0]


def _select_members(which: jax.Array, on: PyTree, off: PyTree) -> PyTree:
    """Leaf by leaf, ``on`` for the members where ``which`` holds and ``off`` elsewhere.

    ``which`` has one entry per member (a scalar without a member axis); it is broadcast
    along each leaf's trailing axes.
    """
    def pick(a, b):
        flag = jnp.reshape(which, which.shape + (1,) * (a.ndim - which.ndim))
        return jnp.where(flag, a, b)

    return jax.tree.map(pick, on, off)


# --- the compiled entry points (members stacked along a leading axis when vmapped) -------


def start(hyper: Mapping, params0: PyTree, keys: jax.Array, batches: PyTree, *,
          program: Program, vmapped: bool, per_member_params: bool):
    """The carry before step 0 and the record at step 0 (of every member when ``vmapped``).

    With ``per_member_params`` each member has its own ``params0`` along the leading axis;
    otherwise all members start from the same ``params0``.
    """
    first = functools.partial(_start, program)
    if vmapped:
        first = jax.vmap(first, in_axes=(0, 0 if per_member_params else None, 0, None))
    return first(hyper, params0, keys, batches)


def advance(hyper: Mapping, carry: _Carry, batches: PyTree, first_step: jax.Array,
            sink: Optional[jax.Array] = None, *, program: Program, vmapped: bool, num_saves: int,
            stream: str = "off"):
    """Run ``num_saves × save_every`` steps from ``first_step``, recording after each block.

    Each block first runs unchecked (:func:`_run_block`); when any member raised its flag,
    the block is run again from its start with every step checked (:func:`_run_block_exact`),
    so the result is that of checking every step while normal blocks pay one element-wise
    add per step and one reduction. With ``vmapped`` the members lie along a leading axis;
    the re-run is one ``lax.cond`` for all of them, but only the members that raised their
    flag take its result: the others keep their unchecked block, so a member's result does
    not depend on whether another diverged (the checked and unchecked steps are different
    programs and may round differently). With ``save_every = 1`` there is nothing to save:
    every step is checked directly, and the step is compiled once instead of twice.

    ``stream="ordered"`` or ``"unordered"`` sends each saved step's loss, metrics and
    ``diverged_at`` (all members at once) to the sink registered under the token ``sink``
    (:mod:`adabias.engine.stream`) through ``jax.debug.callback``; ``"off"`` (the default)
    compiles no callback.
    """
    if stream not in ("off", "ordered", "unordered"):
        raise ValueError(f"stream must be 'off', 'ordered' or 'unordered', got {stream!r}")
    members = jax.vmap if vmapped else (lambda fn, **_: fn)
    fast = members(functools.partial(_run_block, program), in_axes=(0, 0, None, None))
    exact = members(functools.partial(_run_block_exact, program), in_axes=(0, 0, None, None))
    record = members(lambda params: _record(program, params, batches))

    def block(carry: _Carry, block_index: jax.Array):
        start = first_step + block_index * program.save_every
        steps = start + jnp.arange(program.save_every)
        if program.save_every == 1:
            new = exact(hyper, carry, batches, steps)
        else:
            new, rerun = fast(hyper, carry, batches, steps)
            redo = lambda: _select_members(rerun, exact(hyper, carry, batches, steps), new)
            new = jax.lax.cond(jnp.any(rerun), redo, lambda: new)
        records = record(new.params)
        if stream != "off":
            _, loss, metrics = records
            streaming.send(sink, start + program.save_every, loss, metrics, new.diverged_at,
                           ordered=stream == "ordered")
        return new, records

    carry, records = jax.lax.scan(block, carry, jnp.arange(num_saves))
    if vmapped:  # the scan stacks saved points first; records are (member, saved point, ...)
        records = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), records)
    return carry, records
