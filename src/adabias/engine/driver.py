"""Compiling and driving the training program: :func:`run`, and :func:`execute` shared with sweeps.

:func:`execute` compiles :func:`~adabias.engine.loop.start` and
:func:`~adabias.engine.loop.advance` (the jit caches ``_start_jit`` and ``_advance_jit``),
runs the scan over saved points in one call, or in ~20 chunks when a progress bar is shown
or a checkpoint is kept, and joins the records into a :class:`Trajectory`. The training
scan is compiled once per chunk length: once when the chunks are equal, twice when the
number of saved points leaves a shorter last chunk.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from adabias.engine import checks, loop, records, stream
from adabias.engine.checkpoint import Checkpoint, CheckpointError, fingerprint, writable_path
from adabias.engine.loop import LossFn, Metric, NoiseFn, Program, PyTree, Trajectory
from adabias.engine.progress import optional_bar

_start_jit = jax.jit(loop.start, static_argnames=("program", "vmapped", "per_member_params"))
_advance_jit = jax.jit(loop.advance, static_argnames=("program", "vmapped", "num_saves", "stream"))
_send_jit = jax.jit(stream.send, static_argnames=("ordered",))  # step 0 of a streaming run
_COMPILING = "(compiling…)"


def execute(hyper: Mapping, params0: PyTree, keys: jax.Array, batches: PyTree, *,
            program: Program, vmapped: bool, per_member_params: bool, num_steps: int,
            progress: bool, checkpoint: Optional[str] = None,
            on_block: Optional[stream.BlockSink] = None) -> Trajectory:
    """Train for ``num_steps`` steps; the records of every saved step as a :class:`Trajectory`.

    With ``vmapped`` the members lie along a leading axis of ``hyper``, ``keys`` (and of
    ``params0`` with ``per_member_params``), and of every field of the result. ``on_block``
    receives each saved step's records as they are computed (:mod:`adabias.engine.stream`);
    without it the compiled programs hold no callback.
    """
    run = functools.partial(_execute, hyper, params0, keys, batches, program=program, vmapped=vmapped,
                            per_member_params=per_member_params, num_steps=num_steps,
                            progress=progress, checkpoint=checkpoint)
    if on_block is None:
        return run(sink=None, mode="off")
    with stream.registered(on_block) as token:
        return run(sink=token, mode=_stream_mode((hyper, keys, params0)))


def _stream_mode(arrays: PyTree) -> str:
    """Ordered callbacks on one device; XLA allows only unordered ones across several."""
    devices = set()
    for x in jax.tree.leaves(arrays):
        devices |= set(getattr(getattr(x, "sharding", None), "device_set", ()))
    return "ordered" if len(devices) <= 1 else "unordered"


def _execute(hyper: Mapping, params0: PyTree, keys: jax.Array, batches: PyTree, *,
             program: Program, vmapped: bool, per_member_params: bool, num_steps: int,
             progress: bool, checkpoint: Optional[str], sink: Optional[jax.Array], mode: str) -> Trajectory:
    num_saves = num_steps // program.save_every
    chunks = _chunk_sizes(num_saves, 20 if (progress or checkpoint) else 1)
    with optional_bar(progress, total=num_steps, desc=f"adabias {_COMPILING}", unit="step") as bar:
        carry, first = _start_jit(hyper, params0, keys, batches, program=program, vmapped=vmapped,
                                  per_member_params=per_member_params)
        store = None
        if checkpoint is not None:
            store = _checkpoint(checkpoint, hyper, params0, keys, batches, carry, program=program,
                                vmapped=vmapped, per_member_params=per_member_params,
                                num_steps=num_steps, chunks=chunks)
        done_chunks, blocks = 0, []
        if store is not None and store.exists():
            done_chunks, carry, records = store.load(carry, first, len(chunks))
            blocks.append(records)
        elif sink is not None:  # step 0 (a resumed run streams only the steps it computes)
            _send_jit(sink, jnp.asarray(0, jnp.int32), first[1], first[2], carry.diverged_at,
                      ordered=mode == "ordered")
        if bar is not None:
            bar.update(sum(chunks[:done_chunks]) * program.save_every)
        compiled = set()
        for index in range(done_chunks, len(chunks)):
            first_step = jnp.asarray(sum(chunks[:index]) * program.save_every, jnp.int32)
            if bar is not None and chunks[index] not in compiled:
                bar.set_description_str(f"adabias {_COMPILING}")
            carry, records = _advance_jit(hyper, carry, batches, first_step, sink, program=program,
                                          vmapped=vmapped, num_saves=chunks[index], stream=mode)
            compiled.add(chunks[index])  # the call returns once the program is compiled (and cached)
            blocks.append(records)
            if store is not None:
                blocks = [_concatenate(blocks, vmapped=vmapped)]
                store.save(index + 1, carry, blocks[0])
            if bar is not None:
                bar.set_description_str("adabias")
                jax.block_until_ready(records)
                bar.update(chunks[index] * program.save_every)
    axis = 1 if vmapped else 0
    head = jax.tree.map(lambda x: jnp.expand_dims(x, axis), first)
    saved, loss, metrics = _concatenate([head] + blocks, vmapped=vmapped)
    steps = jnp.arange(num_saves + 1) * program.save_every
    if vmapped:
        steps = jnp.broadcast_to(steps, (loss.shape[0], num_saves + 1))
    return Trajectory(steps, saved, loss, metrics, carry.diverged_at, carry.opt_state)


def _checkpoint(path: str, hyper: Mapping, params0: PyTree, keys: jax.Array, batches: PyTree,
                carry: PyTree, *, program: Program, vmapped: bool, per_member_params: bool,
                num_steps: int, chunks: list[int]) -> Checkpoint:
    """The :class:`Checkpoint` at ``path`` keyed by this run's fingerprint.

    The programs enter the fingerprint as their lowered text, which holds every constant the
    traced functions closed over (an optimizer's fixed β₁ or learning rate, data in
    ``loss_fn``), the metrics and noise, shapes and dtypes; the arguments enter by their bytes.
    """
    if not all(getattr(x, "is_fully_addressable", True) for x in jax.tree.leaves((hyper, keys, params0))):
        raise CheckpointError(f"checkpoint {path}: a checkpointed sweep runs on the devices of one "
                              "process only (devices=jax.local_devices())")
    texts = [_start_jit.lower(hyper, params0, keys, batches, program=program, vmapped=vmapped,
                              per_member_params=per_member_params).as_text()]
    if chunks:
        texts.append(_advance_jit.lower(hyper, carry, batches, jnp.asarray(0, jnp.int32), program=program,
                                        vmapped=vmapped, num_saves=chunks[0]).as_text())
    return Checkpoint(path, fingerprint(programs=texts, params0=params0, keys=keys, batches=batches,
                                        hyper=hyper, num_steps=num_steps,
                                        save_every=program.save_every, chunks=chunks))


def build_program(make_optimizer, loss_fn: LossFn, params0: PyTree, num_steps: int, *,
                  batches: Optional[PyTree], noise: Optional[NoiseFn], key: Optional[jax.Array],
                  save_every: int, metrics: Optional[Mapping[str, Metric]],
                  save_params: bool) -> Program:
    """The :class:`Program` of a run or sweep, after the argument checks (``params0``: one member's)."""
    checks.check_run_arguments(loss_fn, params0, num_steps, batches=batches, noise=noise, key=key,
                               save_every=save_every)
    return Program(
        make_optimizer=make_optimizer,
        loss_fn=loss_fn,
        noise=noise,
        metrics=checks.sorted_metrics(metrics),
        save_every=int(save_every),
        has_batches=batches is not None,
        save_params=save_params,
    )


def _concatenate(blocks: list, *, vmapped: bool):
    """Join record blocks along the saved-step axis (axis 1 when members lead)."""
    axis = 1 if vmapped else 0
    return jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=axis), *blocks)


def _chunk_sizes(num_saves: int, target_chunks: int) -> list[int]:
    if num_saves == 0:
        return []
    size = max(1, math.ceil(num_saves / target_chunks))
    sizes = [size] * (num_saves // size)
    if num_saves % size:
        sizes.append(num_saves % size)
    return sizes


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
    on_record: Optional[Callable[[int, dict], None]] = None,
) -> Trajectory:
    """Train ``params0`` with ``optimizer`` for ``num_steps`` steps as one compiled scan.

    The compiled program is cached on the identity of ``optimizer``'s functions, ``loss_fn``,
    ``noise`` and every metric function (and on shapes and dtypes): a second call with the
    same objects reuses it, a new object (a freshly built optimizer, a new ``lambda``)
    compiles again. Build them once and reuse them across calls. The progress bar says
    "compiling…" while it does.

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
        and an interrupted run called again with the same arguments resumes from it. The
        file is keyed by everything that determines the result (the compiled program with
        its constants, ``params0``, ``key``, ``batches``, the steps): a file of another run
        raises :class:`~adabias.engine.CheckpointMismatch` naming what differs; a path that
        cannot be written raises :class:`~adabias.engine.CheckpointError` before any work.
      on_record: ``on_record(step, row)`` called at every saved step while the run goes on,
        with ``row`` = {"loss", "diverged", each metric} (numpy values), from inside the
        compiled program through an ordered ``jax.debug.callback``; e.g.
        :class:`~adabias.engine.CSVStream` or :class:`~adabias.engine.TensorBoardStream`.
        Without it the program holds no callback. An exception it raises is raised when
        the run is over, naming the step (later steps are not sent); a resumed run sends
        only the steps it computes.

    Returns:
      A :class:`Trajectory`; a warning names the step where the run diverged, if it did.
    """
    checkpoint = None if checkpoint is None else writable_path(checkpoint)
    program = build_program(loop.ConstantOptimizer(optimizer), loss_fn, params0, num_steps,
                            batches=batches, noise=noise, key=key, save_every=save_every,
                            metrics=metrics, save_params=save_params)
    key = jax.random.key(0) if key is None else key
    on_block = None if on_record is None else records.run_sink(on_record, dict(program.metrics))
    trajectory = execute({}, params0, key, batches, program=program, vmapped=False,
                         per_member_params=False, num_steps=int(num_steps), progress=progress,
                         checkpoint=checkpoint, on_block=on_block)
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
