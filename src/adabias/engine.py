"""The trajectory engine (layer 3): training as one compiled program.

:func:`run` trains one model; :func:`sweep` trains a grid of hyperparameters × seeds as
one ``vmap``-ed program. Both go through the same code: ``lax.scan`` over saved points,
an inner ``lax.scan`` over the ``save_every`` steps between them.

Step k (k = 0, 1, …) uses, for a mini-batch loss ``loss_fn(params, batch)``, the batch
``k mod m`` of ``batches`` (a pytree whose leaves have leading axis m), passed through
``noise(fold_in(key, k), batch)`` when ``noise`` is given (label noise is expressed this
way). A full-batch loss is ``loss_fn(params)``.

Divergence: when the loss, the gradient or the new parameters are not finite at step k,
the member is marked ``diverged_at = k``, its parameters and optimizer state stop
changing, and later records repeat its last finite parameters. Other members of a
sweep are unaffected.

Checking every step costs little: each block of ``save_every`` steps first runs without
per-step selection, accumulating 0·E and 0·(g + θ) element-wise (NaN exactly where a value
was non-finite); only when that mark is non-finite at the end of the block is the block
run again from its start with the per-step check and selection above. Normal blocks pay
one fused element-wise add per step and one reduction per block; the price is that the
step is compiled twice (unchecked and checked) when ``save_every > 1``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adabias._validation import check_batches

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

    In a :class:`SweepResult` every field has an extra leading member axis.
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


class _Carry(NamedTuple):
    params: PyTree
    opt_state: PyTree
    diverged_at: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class _Program:
    """The static description of a training program (hashable: a jit cache key)."""

    make_optimizer: Callable[..., optax.GradientTransformation]
    loss_fn: LossFn
    noise: Optional[NoiseFn]
    metrics: tuple  # ((name, fn), ...)
    save_every: int
    has_batches: bool
    save_params: bool


# --- one member -------------------------------------------------------------------------


def _tree_all_finite(tree: PyTree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _batch_at(batches: PyTree, k: jax.Array) -> PyTree:
    num_batches = jax.tree.leaves(batches)[0].shape[0]
    return jax.tree.map(lambda x: x[k % num_batches], batches)


def _record(program: _Program, params: PyTree, batches: PyTree):
    if program.has_batches:
        losses = jax.vmap(lambda batch: program.loss_fn(params, batch))(batches)
        loss = jnp.mean(losses)
    else:
        loss = program.loss_fn(params)
    metrics = {name: fn(params) for name, fn in program.metrics}
    saved = params if program.save_params else None
    return saved, loss, metrics


def _update(program: _Program, hyper: Mapping, batches: PyTree, carry: _Carry, k: jax.Array):
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
    same_dtype = lambda new, old: jax.tree.map(lambda a, b: a.astype(b.dtype), new, old)  # noqa: E731
    return loss, grads, same_dtype(params, carry.params), same_dtype(opt_state, carry.opt_state)


def _step(program: _Program, hyper: Mapping, batches: PyTree, carry: _Carry, k: jax.Array):
    """Step k with the exact divergence rule: a non-finite step is marked and not taken."""
    loss, grads, params, opt_state = _update(program, hyper, batches, carry, k)
    finite = jnp.isfinite(loss) & _tree_all_finite(grads) & _tree_all_finite(params)
    alive = carry.diverged_at < 0
    keep = alive & finite
    select = lambda new, old: jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)
    diverged_at = jnp.where(alive & ~finite, k, carry.diverged_at).astype(carry.diverged_at.dtype)
    return _Carry(select(params, carry.params), select(opt_state, carry.opt_state), diverged_at, carry.key)


def _start(program: _Program, hyper: Mapping, params0: PyTree, key: jax.Array, batches: PyTree):
    optimizer = program.make_optimizer(**hyper)
    carry = _Carry(params0, optimizer.init(params0), jnp.array(-1, jnp.int32), key)
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


def _run_block(program: _Program, hyper: Mapping, carry: _Carry, batches: PyTree, steps: jax.Array):
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


def _run_block_exact(program: _Program, hyper: Mapping, carry: _Carry, batches: PyTree, steps: jax.Array):
    """The steps of one block, each checked (:func:`_step`)."""
    return jax.lax.scan(lambda c, k: (_step(program, hyper, batches, c, k), None), carry, steps)[0]


def _advance(program: _Program, vmapped: bool, hyper: Mapping, carry: _Carry, batches: PyTree,
             first_step: jax.Array, num_saves: int):
    """Run ``num_saves × save_every`` steps from ``first_step``, recording after each block.

    Each block first runs unchecked (:func:`_run_block`); when any member raised its flag,
    the block is run again from its start with every step checked (:func:`_run_block_exact`),
    so the result is that of checking every step while normal blocks pay one element-wise
    add per step and one reduction. With ``vmapped`` the members lie along a leading axis
    and the re-run is decided for all of them at once (a ``lax.cond`` on one predicate, not
    a per-member select). With ``save_every = 1`` there is nothing to save: every step is
    checked directly, and the step is compiled once instead of twice.
    """
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
            new = jax.lax.cond(jnp.any(rerun), lambda: exact(hyper, carry, batches, steps), lambda: new)
        return new, record(new.params)

    carry, records = jax.lax.scan(block, carry, jnp.arange(num_saves))
    if vmapped:  # the scan stacks saved points first; records are (member, saved point, ...)
        records = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), records)
    return carry, records


# --- compiled entry points (members stacked along a leading axis when vmapped) -----------


def _start_members(program, vmapped, per_member_params, hyper, params0, keys, batches):
    start = functools.partial(_start, program)
    if vmapped:
        start = jax.vmap(start, in_axes=(0, 0 if per_member_params else None, 0, None))
    return start(hyper, params0, keys, batches)


_start_jit = jax.jit(_start_members, static_argnums=(0, 1, 2))


def _advance_members(program, vmapped, num_saves, hyper, carry, batches, first_step):
    return _advance(program, vmapped, hyper, carry, batches, first_step, num_saves)


_advance_jit = jax.jit(_advance_members, static_argnums=(0, 1, 2))


# --- validation -------------------------------------------------------------------------


def _check_run_arguments(loss_fn, params0, num_steps, batches, noise, key, save_every):
    if not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got num_steps={num_steps!r}")
    if not isinstance(save_every, (int, np.integer)) or save_every < 1:
        raise ValueError(f"save_every must be a positive integer, got save_every={save_every!r}")
    if num_steps % save_every:
        raise ValueError(
            f"num_steps={num_steps} must be a multiple of save_every={save_every} "
            "(records are taken every save_every steps, including the last)"
        )
    if noise is not None and batches is None:
        raise ValueError(
            "noise(key, batch) perturbs each step's batch, so it needs batches; for a "
            "full-batch loss with noise pass batches with a leading axis of size 1"
        )
    if noise is not None and key is None:
        raise ValueError("noise needs a PRNG key: pass key=jax.random.key(seed)")
    if batches is not None:
        check_batches(batches)
    try:
        if batches is None:
            out = jax.eval_shape(loss_fn, params0)
        else:
            out = jax.eval_shape(loss_fn, params0, jax.tree.map(lambda x: x[0], batches))
    except TypeError as error:
        form = "loss_fn(params)" if batches is None else "loss_fn(params, batch)"
        raise ValueError(f"loss_fn could not be called as {form}: {error}") from error
    if getattr(out, "shape", None) != ():
        raise ValueError(f"loss_fn must return a scalar, got shape {getattr(out, 'shape', out)}")


def _normalize_metrics(metrics: Optional[Mapping[str, Metric]]) -> tuple:
    if metrics is None:
        return ()
    if not isinstance(metrics, Mapping):
        raise ValueError("metrics must be a mapping name -> fn(params)")
    for name, fn in metrics.items():
        if not callable(fn):
            raise ValueError(f"metric {name!r} must be callable fn(params), got {fn!r}")
    return tuple(sorted(metrics.items(), key=lambda item: item[0]))


# --- driver shared by run and sweep -------------------------------------------------------


def _execute(program, vmapped, per_member_params, hyper, params0, keys, batches,
             num_steps, progress, checkpoint=None):
    num_saves = num_steps // program.save_every
    carry, first = _start_jit(program, vmapped, per_member_params, hyper, params0, keys, batches)
    chunks = _chunk_sizes(num_saves, 20 if (progress or checkpoint) else 1)
    store = None if checkpoint is None else _Checkpoint(checkpoint, (program, num_steps, hyper, carry))
    done_chunks, blocks = 0, []
    if store is not None and store.exists():
        done_chunks, carry, records = store.load(carry, first)
        blocks.append(records)
    bar = _progress_bar(num_steps, progress)
    if bar is not None:
        bar.update(sum(chunks[:done_chunks]) * program.save_every)
    for index in range(done_chunks, len(chunks)):
        first_step = jnp.asarray(sum(chunks[:index]) * program.save_every, jnp.int32)
        carry, records = _advance_jit(program, vmapped, chunks[index], hyper, carry, batches, first_step)
        blocks.append(records)
        if store is not None:
            blocks = [_concatenate(blocks, vmapped)]
            store.save(index + 1, carry, blocks[0])
        if bar is not None:
            jax.block_until_ready(records)
            bar.update(chunks[index] * program.save_every)
    if bar is not None:
        bar.close()
    axis = 1 if vmapped else 0
    head = jax.tree.map(lambda x: jnp.expand_dims(x, axis), first)
    saved, loss, metrics = _concatenate([head] + blocks, vmapped)
    steps = jnp.arange(num_saves + 1) * program.save_every
    if vmapped:
        steps = jnp.broadcast_to(steps, (loss.shape[0], num_saves + 1))
    return Trajectory(steps, saved, loss, metrics, carry.diverged_at, carry.opt_state)


def _concatenate(blocks: list, vmapped: bool):
    """Join record blocks along the saved-step axis (axis 1 when members lead)."""
    axis = 1 if vmapped else 0
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *blocks)


class _Checkpoint:
    """Carry and records of a long run saved after each chunk, in one ``.npz`` file.

    The file is keyed by a fingerprint of the program (number of steps, save interval,
    hyperparameter values, shapes and dtypes of the state); a mismatching file raises
    instead of being silently reused. It is written atomically (temporary file, rename).
    """

    def __init__(self, path, identity) -> None:
        import hashlib
        import os

        self.path = os.fspath(path)
        program, num_steps, hyper, carry = identity
        leaves, tree = jax.tree.flatten(carry)
        description = repr((
            num_steps, program.save_every, program.has_batches, [name for name, _ in program.metrics],
            {k: np.asarray(v).tolist() for k, v in sorted(hyper.items())},
            str(tree), [(np.shape(x), str(x.dtype)) for x in leaves],
        ))
        self.fingerprint = hashlib.sha256(description.encode()).hexdigest()

    def exists(self) -> bool:
        import os

        return os.path.exists(self.path)

    @staticmethod
    def _to_numpy(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return np.asarray(jax.random.key_data(x))
        return np.asarray(x)

    def save(self, done_chunks: int, carry: _Carry, records) -> None:
        import os

        arrays = {f"carry_{i}": self._to_numpy(x) for i, x in enumerate(jax.tree.leaves(carry))}
        arrays.update({f"records_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(records))})
        temporary = self.path + ".tmp.npz"
        np.savez(temporary, fingerprint=np.asarray(self.fingerprint), done_chunks=done_chunks, **arrays)
        os.replace(temporary, self.path)

    def load(self, carry: _Carry, first):
        with np.load(self.path) as data:
            if str(data["fingerprint"]) != self.fingerprint:
                raise ValueError(
                    f"checkpoint {self.path} belongs to a different run (other steps, "
                    "hyperparameters or shapes); delete it or choose another path"
                )
            leaves, tree = jax.tree.flatten(carry)
            restored = []
            for i, template in enumerate(leaves):
                value = data[f"carry_{i}"]
                if jnp.issubdtype(template.dtype, jax.dtypes.prng_key):
                    restored.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(template)))
                else:
                    restored.append(jnp.asarray(value, dtype=template.dtype))
            record_leaves, record_tree = jax.tree.flatten(first)
            records = [jnp.asarray(data[f"records_{i}"]) for i in range(len(record_leaves))]
            return int(data["done_chunks"]), jax.tree.unflatten(tree, restored), jax.tree.unflatten(record_tree, records)


def _chunk_sizes(num_saves: int, target_chunks: int) -> list[int]:
    if num_saves == 0:
        return []
    size = max(1, math.ceil(num_saves / target_chunks))
    sizes = [size] * (num_saves // size)
    if num_saves % size:
        sizes.append(num_saves % size)
    return sizes


def _progress_bar(total: int, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="step", desc="adabias", leave=False)


def run(
    optimizer: optax.GradientTransformation,
    loss_fn: LossFn,
    params0: PyTree,
    num_steps: int,
    *,
    batches: Optional[PyTree] = None,
    noise: Optional[NoiseFn] = None,
    key: Optional[jax.Array] = None,
    save_every: int = 1,
    metrics: Optional[Mapping[str, Metric]] = None,
    save_params: bool = True,
    progress: bool = False,
    checkpoint: Optional[str] = None,
) -> Trajectory:
    """Train ``params0`` with ``optimizer`` for ``num_steps`` steps as one compiled scan.

    Args:
      optimizer: any ``optax.GradientTransformation``.
      loss_fn: ``loss_fn(params)`` (full batch) or ``loss_fn(params, batch)``.
      params0: initial parameters (any pytree).
      num_steps: number of optimizer steps (a multiple of ``save_every``).
      batches: mini-batches stacked along a leading axis m; step k uses batch k mod m.
      noise: ``noise(key, batch) -> batch`` applied to each step's batch with key
        ``fold_in(key, k)``.
      key: PRNG key for ``noise``.
      save_every: record loss, metrics and params every this many steps.
      metrics: name -> ``fn(params)`` evaluated at the saved steps.
      save_params: record the parameters (turn off for large models).
      progress: show a progress bar (runs the scan in chunks).
      checkpoint: a ``.npz`` path; the state is saved there after each of ~20 chunks
        and an interrupted run called again with the same arguments resumes from it.

    Returns:
      A :class:`Trajectory`; a warning names the step where the run diverged, if it did.
    """
    _check_run_arguments(loss_fn, params0, num_steps, batches, noise, key, save_every)
    program = _Program(
        make_optimizer=_ConstantOptimizer(optimizer),
        loss_fn=loss_fn,
        noise=noise,
        metrics=_normalize_metrics(metrics),
        save_every=int(save_every),
        has_batches=batches is not None,
        save_params=save_params,
    )
    key = jax.random.key(0) if key is None else key
    trajectory = _execute(program, False, False, {}, params0, key, batches, int(num_steps),
                          progress, checkpoint)
    step = int(trajectory.diverged_at)
    if step >= 0:
        warnings.warn(
            f"the run diverged at step {step}: the loss, gradient or parameters became "
            "non-finite (NaN/inf); updates stopped there and later records repeat the "
            "last finite parameters",
            RuntimeWarning,
            stacklevel=2,
        )
    return trajectory


@dataclasses.dataclass(frozen=True)
class _ConstantOptimizer:
    """``make_optimizer()`` for :func:`run`: returns the given transform (hashable)."""

    optimizer: optax.GradientTransformation

    def __call__(self) -> optax.GradientTransformation:
        return self.optimizer

    def __hash__(self) -> int:
        return hash(tuple(self.optimizer))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ConstantOptimizer) and tuple(self.optimizer) == tuple(other.optimizer)


# --- sweeps -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A grid of runs: member i has hyperparameters ``{n: hyperparams[n][i]}`` and seed ``seeds[i]``.

    Members are ordered as ``itertools.product(*grid.values(), range(num_seeds))``, so
    ``reshape(grid_shape)`` of any per-member array gives axes (grid names..., seed).
    """

    hyperparams: dict
    seeds: np.ndarray
    trajectory: Trajectory
    grid_shape: tuple

    @property
    def num_members(self) -> int:
        return int(self.seeds.shape[0])

    def member(self, index: int) -> Trajectory:
        """The trajectory of one member."""
        return jax.tree.map(lambda x: x[index], self.trajectory)

    def rows(self) -> list[dict]:
        """One record per member: hyperparameters, seed, final loss, divergence."""
        final_loss = np.asarray(self.trajectory.loss[:, -1])
        diverged_at = np.asarray(self.trajectory.diverged_at)
        rows = []
        for i in range(self.num_members):
            row = {name: float(values[i]) for name, values in self.hyperparams.items()}
            row.update(seed=int(self.seeds[i]), final_loss=float(final_loss[i]),
                       diverged_at=int(diverged_at[i]))
            for name, values in self.trajectory.metrics.items():
                value = np.asarray(values[i, -1])
                if value.ndim == 0:
                    row[f"final_{name}"] = float(value)
            rows.append(row)
        return rows


MEMBER_AXIS = "members"


def _shard_members(trees: tuple, num_members: int, devices: Optional[Sequence[jax.Device]]):
    """Place arrays with a leading member axis on a 1-d device mesh (no-op on one device)."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) < 2 or num_members % len(devices):
        return trees
    mesh = jax.sharding.Mesh(np.asarray(devices), (MEMBER_AXIS,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(MEMBER_AXIS))
    return tuple(jax.tree.map(lambda x: _put_global(x, sharding), tree) for tree in trees)


def _put_global(x: jax.Array, sharding: jax.sharding.Sharding) -> jax.Array:
    """``x`` (equal on every process) as one array with ``sharding``; each process fills its shards.

    On one host this is ``device_put``; with devices of several processes
    (``jax.distributed``) each process builds only the shards on its own devices.
    """
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _put_global(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _gather_to_every_process(tree: PyTree) -> PyTree:
    """Arrays spread over several processes' devices, gathered whole on every process."""
    if all(getattr(x, "is_fully_addressable", True) for x in jax.tree.leaves(tree)):
        return tree
    from jax.experimental import multihost_utils

    return jax.tree.map(jnp.asarray, multihost_utils.process_allgather(tree, tiled=True))


def sweep(
    make_optimizer: Callable[..., optax.GradientTransformation],
    loss_fn: LossFn,
    params0: PyTree | Callable[[jax.Array], PyTree],
    num_steps: int,
    *,
    grid: Mapping[str, Sequence[float]],
    num_seeds: int = 1,
    key: Optional[jax.Array] = None,
    batches: Optional[PyTree] = None,
    noise: Optional[NoiseFn] = None,
    save_every: int = 1,
    metrics: Optional[Mapping[str, Metric]] = None,
    save_params: bool = True,
    progress: bool = False,
    devices: Optional[Sequence[jax.Device]] = None,
    checkpoint: Optional[str] = None,
) -> SweepResult:
    """Train every point of ``grid`` × ``num_seeds`` seeds as one ``vmap``-ed program.

    ``make_optimizer(**point)`` builds the optimizer from traced hyperparameter values,
    e.g. ``lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2)``; it is
    first called once per point with concrete values, so bad values raise ``ValueError``
    before anything is compiled. The program compiles once per shape, not per value.

    ``params0`` is shared, or ``params0(key) -> params`` draws each seed's start; seed
    ``s`` uses key ``fold_in(key, s)`` for its start and its noise.

    With several devices (``devices``, default all of ``jax.devices()``) the members are
    sharded along a one-axis mesh ``("members",)`` when their number is a multiple of the
    device count; XLA then runs each device's share in parallel. On several hosts, every
    process calls ``jax.distributed.initialize()`` and then this function with the same
    arguments; ``devices=jax.devices()`` (the default) spans all hosts' devices, each process
    computes its members, and the result is gathered whole on every process.
    ``checkpoint`` makes a long sweep resumable, as in :func:`run` (one host only).
    """
    if not grid:
        raise ValueError("grid must name at least one hyperparameter")
    if not isinstance(num_seeds, (int, np.integer)) or num_seeds < 1:
        raise ValueError(f"num_seeds must be a positive integer, got num_seeds={num_seeds!r}")
    names = list(grid)
    values = [list(np.atleast_1d(np.asarray(grid[name], dtype=float))) for name in names]
    for name, vals in zip(names, values):
        if not vals:
            raise ValueError(f"grid[{name!r}] is empty")
    points = list(itertools.product(*values))
    for point in points:
        make_optimizer(**dict(zip(names, point)))  # concrete check of every value
    members = [(point, seed) for point in points for seed in range(num_seeds)]
    dtype = jnp.result_type(float)
    hyper = {
        name: jnp.asarray([point[j] for point, _ in members], dtype=dtype)
        for j, name in enumerate(names)
    }
    seeds = np.asarray([seed for _, seed in members])
    base_key = jax.random.key(0) if key is None else key
    seed_keys = jax.vmap(lambda s: jax.random.fold_in(base_key, s))(jnp.asarray(seeds))
    per_member_params = callable(params0)
    if per_member_params:
        init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(seed_keys)
        start = jax.vmap(params0)(init_keys)
        example = jax.tree.map(lambda x: x[0], start)
    else:
        start, example = params0, params0
    _check_run_arguments(loss_fn, example, num_steps, batches, noise, base_key, save_every)
    program = _Program(
        make_optimizer=make_optimizer,
        loss_fn=loss_fn,
        noise=noise,
        metrics=_normalize_metrics(metrics),
        save_every=int(save_every),
        has_batches=batches is not None,
        save_params=save_params,
    )
    host_hyper = {name: np.asarray(values) for name, values in hyper.items()}
    hyper, seed_keys = _shard_members((hyper, seed_keys), len(members), devices)
    if per_member_params:
        (start,) = _shard_members((start,), len(members), devices)
    trajectory = _execute(program, True, per_member_params, hyper, start, seed_keys, batches,
                          int(num_steps), progress, checkpoint)
    trajectory = _gather_to_every_process(trajectory)
    diverged = int(np.sum(np.asarray(trajectory.diverged_at) >= 0))
    if diverged:
        warnings.warn(
            f"{diverged} of {len(members)} sweep members diverged (non-finite loss, gradient "
            "or parameters); see SweepResult.trajectory.diverged_at",
            RuntimeWarning,
            stacklevel=2,
        )
    grid_shape = tuple(len(v) for v in values) + (num_seeds,)
    return SweepResult(
        hyperparams={name: host_hyper[name] for name in names},
        seeds=seeds,
        trajectory=trajectory,
        grid_shape=grid_shape,
    )
