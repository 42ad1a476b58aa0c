"""Sweeps: a grid of hyperparameters × seeds trained as one ``vmap``-ed program.

:func:`sweep` lays the members out (grid points × seeds, their keys and starts), spreads
them over the devices when there are several, runs them through
:func:`~adabias.engine.driver.execute` and gathers the result as a :class:`SweepResult`.

Devices of this process: the members are cut into equal blocks of at least two (the last
member repeated to fill the last one), and each device runs the one-device program on its
block, from its own thread, all at the same time; the result is one array sharded along the
members. A member's numbers then equal those of a one-device run of a sweep of the block's
size. They equal those of the whole sweep on one device as long as XLA compiles the step
the same way for both member counts: the rule on this CPU for the label-noise, bilinear and
tanh-net sweeps, not for the MLP classifier of CKS Figures 4–6, whose step XLA compiles
differently for 3, 6 or 9 members than for 12 or 15 (last-bit differences, on one device
too). Not one program partitioned over a mesh: XLA's SPMD pipeline
simplifies some divisions differently (last-bit differences, amplified to 10⁻³ by
label-noise training), and a block of one member is compiled with its member axis dropped.
Devices of several processes (``jax.distributed``): one program sharded over a one-axis mesh
``("members",)``, each process computing its own members.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import warnings
from typing import Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adabias.engine import checks, records
from adabias.engine.checkpoint import writable_path
from adabias.engine.driver import build_program, execute
from adabias.engine.loop import LossFn, Metric, NoiseFn, PyTree, Trajectory


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """A grid of runs: member i has hyperparameters ``{n: hyperparams[n][i]}`` and seed ``seeds[i]``.

    Members are ordered as ``itertools.product(*grid.values(), range(num_seeds))``, so
    ``reshape(grid_shape)`` of any per-member array gives axes (grid names..., seed).
    ``hyperparams`` holds the values the program was given (in its floating-point dtype,
    e.g. float32 without x64); ``grid`` the grid as the user gave it, which :meth:`point`,
    :meth:`rows` and :meth:`to_csv` report.
    """

    hyperparams: dict
    seeds: np.ndarray
    trajectory: Trajectory
    grid_shape: tuple
    grid: dict  # name -> the values as given (Python numbers)

    @property
    def num_members(self) -> int:
        return int(self.seeds.shape[0])

    def member(self, index: int) -> Trajectory:
        """The trajectory of one member."""
        return jax.tree.map(lambda x: x[index], self.trajectory)

    def point(self, index: int) -> dict:
        """The grid point of member ``index``, with the values as given."""
        cell = np.unravel_index(index // self.grid_shape[-1], self.grid_shape[:-1])
        return {name: values[int(j)] for (name, values), j in zip(self.grid.items(), cell)}

    def rows(self) -> list[dict]:
        """One record per member: grid values as given, seed, final loss, divergence."""
        final_loss = np.asarray(self.trajectory.loss[:, -1])
        diverged_at = np.asarray(self.trajectory.diverged_at)
        rows = []
        for i in range(self.num_members):
            row = self.point(i)
            row.update(seed=int(self.seeds[i]), final_loss=float(final_loss[i]),
                       diverged_at=int(diverged_at[i]))
            for name, values in self.trajectory.metrics.items():
                value = np.asarray(values[i, -1])
                if value.ndim == 0:
                    row[f"final_{name}"] = float(value)
            rows.append(row)
        return rows

    def to_csv(self, path, *, params: bool = False) -> None:
        """Write the records as CSV, one row per member and saved step (atomically: temporary
        file, then ``os.replace``). Columns: step, member, each grid value as given, seed,
        loss, diverged, each metric (an array metric one column per entry, ``name[i]``) and,
        with ``params=True``, each parameter entry (``params['w'][0]``)."""
        records.write_csv(path, self._columns(params))

    def to_dataframe(self, *, params: bool = False):
        """The rows of :meth:`to_csv` as a pandas DataFrame (the extra ``adabias[pandas]``)."""
        return records.dataframe(self._columns(params))

    def _columns(self, params: bool) -> dict:
        labels = records.sweep_labels(self.grid, self.grid_shape[-1])
        return records.columns(self.trajectory, labels=labels, params=params)


# --- placing members on devices ------------------------------------------------------------

MEMBER_AXIS = "members"


def _blocks(num_members: int, devices: list) -> tuple[list, int]:
    """(devices used, members per device): as many devices as give each at least two members
    (the last member repeated to fill the last block); ([], num_members) for one device."""
    count = min(len(devices), num_members // 2)
    if count < 2:
        return [], num_members
    return devices[:count], -(-num_members // count)


def _padded(tree: PyTree, size: int) -> PyTree:
    """Arrays with a leading member axis, their last member repeated up to ``size`` members."""
    def pad(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(pad(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        return jnp.concatenate([x, jnp.repeat(x[-1:], size - x.shape[0], axis=0)])

    return jax.tree.map(pad, tree)


def _execute_blocks(devices: list, size: int, hyper: dict, start: PyTree, seed_keys: jax.Array,
                    batches: PyTree, *, per_member_params: bool, progress: bool,
                    **options) -> Trajectory:
    """:func:`execute` of ``size`` members on each of ``devices``, all at the same time (one
    thread per device but the last, which runs here with the progress bar: XLA runs a
    program it deems cheap, such as a ``scan``, in the calling thread); the blocks joined as
    one array sharded along the members, cut back to ``hyper``'s members."""
    num_members = seed_keys.shape[0]
    total = size * len(devices)
    hyper, seed_keys = _padded((hyper, seed_keys), total)
    start = _padded(start, total) if per_member_params else start

    def run(index: int) -> Trajectory:
        members = slice(index * size, (index + 1) * size)
        cut = lambda tree: jax.tree.map(lambda x: x[members], tree)
        put = lambda tree: jax.device_put(tree, devices[index])
        trajectory = execute(put(cut(hyper)), put(cut(start) if per_member_params else start),
                             put(seed_keys[members]), put(batches), vmapped=True,
                             per_member_params=per_member_params,
                             progress=progress and index == len(devices) - 1, **options)
        return jax.block_until_ready(trajectory)

    outcomes: list = [None] * len(devices)

    def work(index: int) -> None:
        try:
            outcomes[index] = (run(index), None)
        except BaseException as error:  # raised again below, in the calling thread
            outcomes[index] = (None, error)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(devices) - 1)]
    for thread in threads:
        thread.start()
    work(len(devices) - 1)
    for thread in threads:
        thread.join()
    for _, error in outcomes:
        if error is not None:
            raise error
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.asarray(devices), (MEMBER_AXIS,)),
                                          jax.sharding.PartitionSpec(MEMBER_AXIS))
    def join(*blocks):   # (some records, e.g. the steps, are made on the default device)
        shards = [jax.device_put(x, device) for x, device in zip(blocks, devices)]
        return jax.make_array_from_single_device_arrays((total,) + blocks[0].shape[1:],
                                                        sharding, shards)

    joined = jax.tree.map(join, *[part for part, _ in outcomes])
    return joined if total == num_members else jax.tree.map(lambda x: x[:num_members], joined)


def _shard_members(trees: tuple, num_members: int, devices: list):
    """Place arrays with a leading member axis on a 1-d device mesh (no-op on one device)."""
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


# --- the sweep -------------------------------------------------------------------------------


def _starts(params0: Optional[PyTree], init_params: Optional[Callable], seed_keys: jax.Array):
    """``(start, one member's start)``: ``params0`` shared by all members, or ``init_params``
    drawn for every member with key ``fold_in(seed key, 1)`` (a leading member axis)."""
    if init_params is None:
        return params0, params0
    if params0 is not None:
        raise ValueError("init_params draws every seed's start, so params0 must be None; pass "
                         "either one start (params0) or the function (init_params), not both")
    if not callable(init_params):
        raise ValueError(f"init_params must be a function init_params(key) -> params, got {init_params!r}")
    init_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(seed_keys)
    try:
        start = jax.vmap(init_params)(init_keys)
    except TypeError as error:
        raise ValueError(
            f"init_params(key) failed under jax.vmap: {error}. It must take one PRNG key and "
            f"return the parameters, a pytree of floating-point arrays. {checks.PARTITION_HINT}"
        ) from error
    example = jax.tree.map(lambda x: x[0], start)
    checks.check_params(example, name="init_params(key)")
    return start, example


def sweep(
    make_optimizer: Callable[..., optax.GradientTransformation],
    loss_fn: LossFn,
    params0: Optional[PyTree],
    num_steps: int,
    *,
    grid: Mapping[str, Sequence[float]],
    init_params: Optional[Callable[[jax.Array], PyTree]] = None,
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
    on_record: Optional[Callable[[int, dict], None]] = None,
) -> SweepResult:
    """Train every point of ``grid`` × ``num_seeds`` seeds as one ``vmap``-ed program.

    ``make_optimizer(**point)`` builds the optimizer from traced hyperparameter values,
    e.g. ``lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2)``; it is
    first called once per point with concrete values, so bad values raise ``ValueError``
    before anything is compiled. The program compiles once per shape, not per value.

    ``params0`` is the start every member shares: any pytree of floating-point arrays (an
    equinox model is passed through ``eqx.partition`` first). To draw each seed's own start
    pass ``params0=None`` and ``init_params(key) -> params``; seed ``s`` uses key
    ``fold_in(key, s)`` for its noise and ``fold_in(fold_in(key, s), 1)`` for its start.

    With several devices of this process (``devices``, default all of ``jax.devices()``; on a
    CPU ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` makes N) the members are cut
    into blocks of at least two, one per device, which run at the same time; the result
    equals a one-device run bit for bit (module docstring). On several hosts, every process
    calls ``jax.distributed.initialize()`` and then this function with the same arguments;
    ``devices=jax.devices()`` (the default) spans all hosts' devices, the members are sharded
    along a one-axis mesh ``("members",)`` when their number is a multiple of the device
    count, each process computes its members, and the result is gathered whole on every
    process. ``checkpoint`` makes a long sweep resumable, as in :func:`~adabias.engine.run`
    (one host only). ``on_record(step, row)`` streams the records as in
    :func:`~adabias.engine.run`, once per member and saved step, ``row`` starting with
    ``member``, the grid values as given and ``seed`` (the columns of
    :meth:`SweepResult.to_csv`). A checkpointed or streamed sweep runs as one program sharded
    along the mesh (last-bit differences from a one-device run are possible, see the module
    docstring); there the callback is unordered (rows carry their step) and runs in the
    first process only.
    """
    checkpoint = None if checkpoint is None else writable_path(checkpoint)
    names, values = checks.check_grid(make_optimizer, grid, num_seeds=num_seeds)
    given = records.given_grid(grid)
    on_block = None if on_record is None else records.sweep_sink(
        on_record, dict(checks.sorted_metrics(metrics)), records.sweep_labels(given, num_seeds))
    members = [(point, seed) for point in itertools.product(*values) for seed in range(num_seeds)]
    dtype = jnp.result_type(float)
    hyper = {
        name: jnp.asarray([point[j] for point, _ in members], dtype=dtype)
        for j, name in enumerate(names)
    }
    seeds = np.asarray([seed for _, seed in members])
    base_key = jax.random.key(0) if key is None else key
    seed_keys = jax.vmap(lambda s: jax.random.fold_in(base_key, s))(jnp.asarray(seeds))
    per_member_params = init_params is not None
    start, example = _starts(params0, init_params, seed_keys)
    program = build_program(make_optimizer, loss_fn, example, num_steps, batches=batches,
                            noise=noise, key=base_key, save_every=save_every, metrics=metrics,
                            save_params=save_params)
    host_hyper = {name: np.asarray(values) for name, values in hyper.items()}
    devices = list(jax.devices() if devices is None else devices)
    local = all(d.process_index == jax.process_index() for d in devices)
    as_blocks = local and checkpoint is None and on_block is None
    used, size = _blocks(len(members), devices) if as_blocks else ([], 0)
    if used:
        trajectory = _execute_blocks(used, size, hyper, start, seed_keys, batches,
                                     program=program, per_member_params=per_member_params,
                                     num_steps=int(num_steps), progress=progress)
    else:
        hyper, seed_keys = _shard_members((hyper, seed_keys), len(members), devices)
        if per_member_params:
            (start,) = _shard_members((start,), len(members), devices)
        trajectory = execute(hyper, start, seed_keys, batches, program=program, vmapped=True,
                             per_member_params=per_member_params, num_steps=int(num_steps),
                             progress=progress, checkpoint=checkpoint, on_block=on_block)
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
        grid=given,
    )
