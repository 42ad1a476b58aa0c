"""The trajectory engine against plain Python loops of optax updates."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adabias as ab
from adabias.engine import driver

jax.config.update("jax_enable_x64", True)

TARGET = jnp.array([1.0, -2.0, 0.5])


def full_loss(params):
    return 0.5 * jnp.sum((params["w"] - TARGET) ** 2) + 0.1 * jnp.sum(params["w"] ** 4) + params["b"] ** 2


def batch_loss(params, batch):
    prediction = batch["x"] @ params["w"] + params["b"]
    return 0.5 * jnp.mean((prediction - batch["y"]) ** 2)


PARAMS0 = {"w": jnp.array([0.1, 0.2, -0.3]), "b": jnp.array(0.5)}
KEY = jax.random.key(3)
BATCHES = {
    "x": jax.random.normal(jax.random.key(0), (3, 4, 3)),  # m = 3 batches of 4 samples
    "y": jax.random.normal(jax.random.key(1), (3, 4)),
}


def label_noise(key, batch):
    signs = jax.random.rademacher(key, batch["y"].shape, dtype=batch["y"].dtype)
    return {**batch, "y": batch["y"] + 0.5 * signs}


def loop(optimizer, num_steps, batches=None, noise=None, key=None):
    params, state = PARAMS0, optimizer.init(PARAMS0)
    history = [params]
    for k in range(num_steps):
        if batches is None:
            grads = jax.grad(full_loss)(params)
        else:
            batch = jax.tree.map(lambda x: x[k % 3], batches)
            if noise is not None:
                batch = noise(jax.random.fold_in(key, k), batch)
            grads = jax.grad(batch_loss)(params, batch)
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        history.append(params)
    return history


def assert_tree_close(a, b, rtol=1e-12):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=1e-13)


def test_full_batch_run_matches_python_loop_at_every_saved_step():
    opt = ab.optim.adam(0.05, 0.9, 0.99, 1e-6)
    trajectory = ab.run(opt, full_loss, PARAMS0, 30, save_every=5,
                        metrics={"w_sum": lambda p: jnp.sum(p["w"])})
    history = loop(opt, 30)
    np.testing.assert_array_equal(trajectory.steps, np.arange(0, 31, 5))
    for i, step in enumerate(range(0, 31, 5)):
        assert_tree_close(jax.tree.map(lambda x: x[i], trajectory.params), history[step])
        np.testing.assert_allclose(trajectory.loss[i], full_loss(history[step]), rtol=1e-12)
        np.testing.assert_allclose(trajectory.metrics["w_sum"][i], jnp.sum(history[step]["w"]), rtol=1e-12)
    assert int(trajectory.diverged_at) == -1
    assert_tree_close(trajectory.final_params, history[-1])


def test_cyclic_minibatches_and_noise_match_python_loop():
    opt = ab.optim.heavy_ball(0.05, 0.5)
    trajectory = ab.run(opt, batch_loss, PARAMS0, 14, batches=BATCHES, noise=label_noise,
                        key=KEY, save_every=7)
    history = loop(opt, 14, BATCHES, label_noise, KEY)
    assert_tree_close(trajectory.final_params, history[-1])
    # the recorded loss is the noise-free mean over all batches
    expected = np.mean([batch_loss(history[7], jax.tree.map(lambda x: x[j], BATCHES)) for j in range(3)])
    np.testing.assert_allclose(trajectory.loss[1], expected, rtol=1e-12)
    # without noise the iterates differ: the noise was really applied
    clean = loop(opt, 14, BATCHES)
    assert not np.allclose(clean[-1]["w"], history[-1]["w"])


def test_divergence_is_detected_and_updates_stop():
    trajectory_warning = pytest.warns(RuntimeWarning, match="diverged at step")
    with trajectory_warning:
        trajectory = ab.run(ab.optim.gd(3.0), full_loss, PARAMS0, 40)
    k = int(trajectory.diverged_at)
    assert k > 0
    assert np.all(np.isfinite(trajectory.params["w"]))
    frozen = trajectory.params["w"][k:]  # records after step k repeat the last finite params
    np.testing.assert_array_equal(frozen, np.broadcast_to(frozen[0], frozen.shape))
    assert not np.array_equal(trajectory.params["w"][k - 1], trajectory.params["w"][0])


def test_nan_loss_at_start_is_divergence_at_step_zero():
    with pytest.warns(RuntimeWarning, match="step 0"):
        trajectory = ab.run(ab.optim.adam(0.1), lambda p: jnp.sum(p["w"]) * jnp.nan, PARAMS0, 5)
    assert int(trajectory.diverged_at) == 0


def test_sweep_members_equal_separate_runs_and_a_diverging_member_does_not_stop_others():
    grid = {"learning_rate": [0.05, 3.0], "beta": [0.0, 0.5]}
    with pytest.warns(RuntimeWarning, match="sweep members diverged"):
        result = ab.sweep(lambda learning_rate, beta: ab.optim.heavy_ball(learning_rate, beta),
                          full_loss, PARAMS0, 20, grid=grid, save_every=10)
    assert result.grid_shape == (2, 2, 1)
    diverged = np.asarray(result.trajectory.diverged_at)
    assert (diverged[:2] == -1).all() and (diverged[2:] >= 0).all()
    for i, (lr, beta) in enumerate([(0.05, 0.0), (0.05, 0.5)]):
        single = ab.run(ab.optim.heavy_ball(lr, beta), full_loss, PARAMS0, 20, save_every=10)
        assert result.hyperparams["learning_rate"][i] == lr and result.hyperparams["beta"][i] == beta
        assert_tree_close(result.member(i).params, single.params, rtol=1e-10)
    rows = result.rows()
    assert len(rows) == 4 and rows[3]["diverged_at"] >= 0


def test_sweep_seeds_draw_their_own_start_and_noise():
    def init(key):
        return {"w": 0.1 * jax.random.normal(key, (3,)), "b": jnp.array(0.0)}

    result = ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), batch_loss, None, 6,
                      grid={"learning_rate": [0.1]}, init_params=init, num_seeds=3, key=KEY, batches=BATCHES,
                      noise=label_noise, save_every=3)
    starts = np.asarray(result.trajectory.params["w"][:, 0])
    assert len({tuple(row) for row in starts.round(12)}) == 3
    seed_key = jax.random.fold_in(KEY, 1)
    single = ab.run(ab.optim.gd(0.1), batch_loss, init(jax.random.fold_in(seed_key, 1)), 6,
                    batches=BATCHES, noise=label_noise, key=seed_key, save_every=3)
    assert_tree_close(result.member(1).params, single.params, rtol=1e-10)


def test_sixteen_point_grid_compiles_once():
    compiles = []
    listener = lambda event, duration, **kwargs: compiles.append(event) if "backend_compile" in event else None
    jax.monitoring.register_event_duration_secs_listener(listener)

    def make(learning_rate, beta2):
        return ab.optim.adam(learning_rate, 0.9, beta2, 1e-8)

    try:
        cache_before = driver._advance_jit._cache_size()
        ab.sweep(make, full_loss, PARAMS0, 20, grid={"learning_rate": np.geomspace(1e-3, 1e-1, 4),
                                                     "beta2": [0.9, 0.95, 0.99, 0.999]}, save_every=5)
        assert driver._advance_jit._cache_size() == cache_before + 1
        compiles.clear()
        ab.sweep(make, full_loss, PARAMS0, 20, grid={"learning_rate": np.geomspace(2e-3, 2e-1, 4),
                                                     "beta2": [0.8, 0.85, 0.9, 0.95]}, save_every=5)
        assert compiles == []
        assert driver._advance_jit._cache_size() == cache_before + 1
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_sweep_rejects_a_bad_grid_value_before_compiling():
    with pytest.raises(ValueError, match="beta2"):
        ab.sweep(lambda beta2: ab.optim.adam(0.1, 0.9, beta2), full_loss, PARAMS0, 5,
                 grid={"beta2": [0.9, 1.0]})


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_steps=10, save_every=3), "multiple of save_every"),
    (dict(num_steps=-1), "num_steps"),
    (dict(num_steps=4, noise=label_noise, key=KEY), "needs batches"),
])
def test_bad_run_arguments(kwargs, message):
    num_steps = kwargs.pop("num_steps")
    with pytest.raises(ValueError, match=message):
        ab.run(ab.optim.gd(0.1), full_loss, PARAMS0, num_steps, **kwargs)


def test_bad_loss_and_batches():
    with pytest.raises(ValueError, match="scalar"):
        ab.run(ab.optim.gd(0.1), lambda p: p["w"], PARAMS0, 2)
    with pytest.raises(ValueError, match="leading axis"):
        ab.run(ab.optim.gd(0.1), batch_loss, PARAMS0, 2,
               batches={"x": BATCHES["x"], "y": BATCHES["y"][:2]})
    with pytest.raises(ValueError, match="PRNG key"):
        ab.run(ab.optim.gd(0.1), batch_loss, PARAMS0, 2, batches=BATCHES, noise=label_noise)


def test_progress_bar_runs_in_chunks_with_the_same_result():
    opt = ab.optim.adam(0.05)
    plain = ab.run(opt, full_loss, PARAMS0, 40, save_every=2)
    cache_before = driver._advance_jit._cache_size()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunked = ab.run(opt, full_loss, PARAMS0, 40, save_every=2, progress=True)
    # 20 chunks of one block each, one training program (PARAMS0["b"] is weakly typed)
    assert driver._advance_jit._cache_size() == cache_before + 1
    assert_tree_close(plain.params, chunked.params)
    np.testing.assert_array_equal(plain.steps, chunked.steps)


SHARDED_SWEEP = r"""
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import adabias as ab
assert len(jax.devices()) == 2, jax.devices()
loss = lambda p: 0.5 * jnp.sum((p - jnp.array([1.0, -2.0])) ** 2) + 0.1 * jnp.sum(p ** 4)
make = lambda learning_rate: ab.optim.adam(learning_rate, 0.9, 0.99)
grid = {"learning_rate": [0.01, 0.02, 0.05, 0.1]}
sharded = ab.sweep(make, loss, jnp.zeros(2), 50, grid=grid, save_every=10)
shards = {d for d in sharded.trajectory.loss.sharding.device_set}
single = ab.sweep(make, loss, jnp.zeros(2), 50, grid=grid, save_every=10, devices=jax.devices()[:1])
np.testing.assert_allclose(sharded.trajectory.params, single.trajectory.params, rtol=1e-12)
# a member diverging inside a block: the re-run is decided across devices
with __import__("warnings").catch_warnings():
    __import__("warnings").simplefilter("ignore")
    grid = {"learning_rate": [0.01, 0.1, 0.5, 3.0]}
    sharded_gd = ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, jnp.zeros(2), 40, grid=grid, save_every=10)
    single_gd = ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, jnp.zeros(2), 40, grid=grid, save_every=10,
                         devices=jax.devices()[:1])
diverged = np.asarray(sharded_gd.trajectory.diverged_at)
assert (diverged[:3] == -1).all() and diverged[3] > 0 and diverged[3] % 10, diverged
np.testing.assert_array_equal(diverged, single_gd.trajectory.diverged_at)
np.testing.assert_allclose(sharded_gd.trajectory.params, single_gd.trajectory.params, rtol=1e-12)
print("devices used:", len(shards))
"""


def test_sweep_members_shard_over_two_devices():
    import os
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SHARDED_SWEEP], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "devices used: 2" in out.stdout


TWO_PROCESS_SWEEP = r"""
import sys, warnings
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address="127.0.0.1:" + sys.argv[2], num_processes=2,
                           process_id=int(sys.argv[1]))
jax.config.update("jax_enable_x64", True)
import numpy as np, jax.numpy as jnp
import adabias as ab
assert len(jax.devices()) == 2 and len(jax.local_devices()) == 1
loss = lambda p: 0.5 * jnp.sum((p - jnp.array([1.0, -2.0])) ** 2) + 0.1 * jnp.sum(p ** 4)
grid = {"learning_rate": [0.01, 0.1, 0.5, 3.0]}
warnings.simplefilter("ignore")
run = lambda devices: ab.sweep(lambda learning_rate: ab.optim.gd(learning_rate), loss, jnp.zeros(2), 40,
                               grid=grid, save_every=10, devices=devices)
both, local = run(jax.devices()), run(jax.local_devices())
np.testing.assert_array_equal(both.trajectory.diverged_at, local.trajectory.diverged_at)
np.testing.assert_allclose(both.trajectory.params, local.trajectory.params, rtol=1e-12)
np.testing.assert_array_equal(both.hyperparams["learning_rate"], grid["learning_rate"])
print("process", jax.process_index(), "diverged_at", np.asarray(both.trajectory.diverged_at).tolist())
"""


@pytest.mark.slow
def test_sweep_over_two_processes_equals_one_device():
    """jax.distributed with two CPU processes on this host (one device each, gloo collectives)."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    workers = [subprocess.Popen([sys.executable, "-c", TWO_PROCESS_SWEEP, str(i), port], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    for worker, (stdout, stderr) in zip(workers, outputs):
        assert worker.returncode == 0, stderr[-2000:]
        assert "diverged_at [-1, -1, -1, " in stdout


def test_checkpointed_run_resumes_after_an_interruption(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    opt = ab.optim.adam(0.05)
    reference = ab.run(opt, batch_loss, PARAMS0, 40, batches=BATCHES, noise=label_noise, key=KEY)
    calls = {"n": 0}
    original = driver._advance_jit

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    interrupted.lower = original.lower  # the checkpoint's fingerprint lowers the program
    monkeypatch.setattr(driver, "_advance_jit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ab.run(opt, batch_loss, PARAMS0, 40, batches=BATCHES, noise=label_noise, key=KEY, checkpoint=path)
    assert path.exists()
    calls["n"] = -100
    resumed = ab.run(opt, batch_loss, PARAMS0, 40, batches=BATCHES, noise=label_noise, key=KEY, checkpoint=path)
    assert calls["n"] == -100 + 20 - 5  # only the 15 remaining chunks ran
    assert_tree_close(resumed.params, reference.params)
    np.testing.assert_allclose(resumed.loss, reference.loss, rtol=1e-12)
    with pytest.raises(ValueError, match="different run"):
        ab.run(ab.optim.adam(0.05), batch_loss, PARAMS0, 80, batches=BATCHES, noise=label_noise,
               key=KEY, checkpoint=path)


# --- divergence: blocks run unchecked and are re-run step by step when a value is non-finite


def loop_with_divergence(optimizer, loss, params0, num_steps, batches=None):
    """The documented rule step by step: a step whose loss, gradient or new params are
    non-finite is not taken, marks diverged_at and freezes the state."""
    params, state, diverged_at = params0, optimizer.init(params0), -1
    history = [params]
    for k in range(num_steps):
        if diverged_at < 0:
            args = () if batches is None else (jax.tree.map(lambda x: x[k % jax.tree.leaves(batches)[0].shape[0]], batches),)
            value, grads = jax.value_and_grad(loss)(params, *args)
            updates, new_state = optimizer.update(grads, state, params)
            new_params = optax.apply_updates(params, updates)
            if all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves((value, grads, new_params))):
                params, state = new_params, new_state
            else:
                diverged_at = k
        history.append(params)
    return history, diverged_at


def assert_matches_loop(trajectory, history, diverged_at, save_every, rtol=1e-12):
    assert int(trajectory.diverged_at) == diverged_at
    for i, step in enumerate(np.asarray(trajectory.steps)):
        assert_tree_close(jax.tree.map(lambda x: x[i], trajectory.params), history[step], rtol=rtol)


def test_divergence_inside_a_block_is_the_first_non_finite_step():
    optimizer = ab.optim.gd(3.0)
    history, diverged_at = loop_with_divergence(optimizer, full_loss, PARAMS0, 40)
    assert diverged_at > 0 and diverged_at % 8 not in (0, 7)  # strictly inside a block
    with pytest.warns(RuntimeWarning, match=f"diverged at step {diverged_at}"):
        trajectory = ab.run(optimizer, full_loss, PARAMS0, 40, save_every=8)
    assert_matches_loop(trajectory, history, diverged_at, 8)


def test_divergence_at_the_first_step_of_a_block_run():
    nan_loss = lambda p: jnp.sum(p["w"]) * jnp.nan
    with pytest.warns(RuntimeWarning, match="step 0"):
        trajectory = ab.run(ab.optim.adam(0.1), nan_loss, PARAMS0, 10, save_every=5)
    assert int(trajectory.diverged_at) == 0
    for i in range(3):
        assert_tree_close(jax.tree.map(lambda x: x[i], trajectory.params), PARAMS0, rtol=0)


def sqrt_loss(params, batch):
    """Finite everywhere; its gradient in z is z/√(z² + c) = 0/0 = NaN at z = 0, c = 0."""
    return full_loss({"w": params["w"], "b": params["b"]}) + jnp.sum(jnp.sqrt(params["z"] ** 2 + batch["c"]))


def test_a_non_finite_gradient_alone_is_divergence():
    # zero_nans turns the NaN gradient into a finite update: loss and params stay finite
    optimizer = optax.chain(optax.zero_nans(), optax.sgd(0.05))
    params0 = {**PARAMS0, "z": jnp.zeros(2)}
    batches = {"c": jnp.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])}  # batch 5 poisons the gradient
    history, diverged_at = loop_with_divergence(optimizer, sqrt_loss, params0, 12, batches)
    assert diverged_at == 5
    value = sqrt_loss(history[5], {"c": jnp.array(0.0)})
    assert np.isfinite(value)
    with pytest.warns(RuntimeWarning, match="diverged at step 5"):
        trajectory = ab.run(optimizer, sqrt_loss, params0, 12, batches=batches, save_every=4)
    assert_matches_loop(trajectory, history, diverged_at, 4)


def test_sweep_member_diverging_inside_a_block_leaves_the_others_exact():
    grid = {"learning_rate": [0.05, 3.0, 0.2]}
    with pytest.warns(RuntimeWarning, match="1 of 3 sweep members diverged"):
        result = ab.sweep(lambda learning_rate: ab.optim.heavy_ball(learning_rate, 0.5), full_loss,
                          PARAMS0, 24, grid=grid, save_every=8)
    for i, learning_rate in enumerate(grid["learning_rate"]):
        history, diverged_at = loop_with_divergence(ab.optim.heavy_ball(learning_rate, 0.5), full_loss, PARAMS0, 24)
        assert_matches_loop(result.member(i), history, diverged_at, 8, rtol=1e-10)
    assert int(result.trajectory.diverged_at[1]) % 8 != 0


def test_an_overflowing_check_re_runs_the_block_without_marking_divergence():
    # float32: g + θ = 2·10³⁸ + 2·10³⁸ overflows although loss, gradient and params are finite
    big = jnp.float32(2e38)
    params0 = {"w": jnp.full(3, big, jnp.float32)}
    linear = lambda p: jnp.sum(big * (p["w"] - big))
    optimizer = ab.optim.gd(1e-38)
    history, diverged_at = loop_with_divergence(optimizer, linear, params0, 6)
    assert diverged_at == -1 and 2 * float(big) > float(np.finfo(np.float32).max)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trajectory = ab.run(optimizer, linear, params0, 6, save_every=3)
    assert_matches_loop(trajectory, history, diverged_at, 3, rtol=0)
    assert np.all(np.isfinite(trajectory.loss))


def test_a_float32_model_keeps_float32_state_in_a_float64_sweep():
    # under x64 the swept β, ρ are float64 tracers; parameters and moments must stay float32
    params0 = {"w": jnp.array([0.1, 0.2, -0.3], jnp.float32)}

    def loss32(params):
        return 0.5 * jnp.sum((params["w"] - TARGET.astype(jnp.float32)) ** 2)

    grid = {"beta1": [0.8, 0.9], "beta2": [0.9, 0.99]}
    result = ab.sweep(lambda beta1, beta2: ab.optim.adam(1e-2, beta1, beta2, 1e-8), loss32,
                      params0, 20, grid=grid, save_every=5)
    final = result.trajectory.final_params["w"]
    assert final.dtype == jnp.float32
    # the same Adam as a float32 NumPy loop
    for member, (beta1, beta2) in enumerate([(b1, b2) for b1 in grid["beta1"] for b2 in grid["beta2"]]):
        w, m, v = np.array([0.1, 0.2, -0.3], np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
        for n in range(1, 21):
            g = w - np.asarray(TARGET, np.float32)
            m = np.float32(beta1) * m + np.float32(1 - beta1) * g
            v = np.float32(beta2) * v + np.float32(1 - beta2) * g * g
            m_hat, v_hat = m / np.float32(1 - beta1**n), v / np.float32(1 - beta2**n)
            w = w - np.float32(1e-2) * m_hat / np.sqrt(v_hat + np.float32(1e-8))
        np.testing.assert_allclose(np.asarray(final[member]), w, rtol=1e-5, atol=1e-6)


def test_final_optimizer_state_continues_the_run_exactly():
    # 30 steps in one run = 20 steps, then 10 more from (final params, final state)
    opt = ab.optim.adam(0.05, 0.9, 0.99, 1e-6)
    whole = ab.run(opt, full_loss, PARAMS0, 30, save_every=10)
    first = ab.run(opt, full_loss, PARAMS0, 20, save_every=10)
    params, state = first.final_params, first.final_opt_state
    for _ in range(10):  # the continuation as a plain optax loop
        updates, state = opt.update(jax.grad(full_loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert_tree_close(params, whole.final_params)
    assert_tree_close(state, whole.final_opt_state)
    # Adam's second moment is the EMA of squared gradients: after 30 steps it matches the
    # NumPy recursion along the recorded-by-loop iterates
    history = loop(opt, 30)
    nu = jax.tree.map(jnp.zeros_like, PARAMS0)
    for p in history[:-1]:
        nu = jax.tree.map(lambda n, g: 0.99 * n + 0.01 * g * g, nu, jax.grad(full_loss)(p))
    assert_tree_close(whole.final_opt_state[0].nu, nu, rtol=1e-10)


def test_sweep_members_carry_their_own_final_state():
    grid = {"beta2": [0.9, 0.999]}
    result = ab.sweep(lambda beta2: ab.optim.adam(0.05, 0.9, beta2, 1e-6), full_loss, PARAMS0, 12,
                      grid=grid, save_every=4)
    for i, beta2 in enumerate(grid["beta2"]):
        single = ab.run(ab.optim.adam(0.05, 0.9, beta2, 1e-6), full_loss, PARAMS0, 12, save_every=4)
        assert_tree_close(result.member(i).final_opt_state, single.final_opt_state, rtol=1e-10)
