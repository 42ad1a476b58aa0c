"""Label-noise Adam (AGM form) on the diagonal net: ``ab.run`` against a plain PyTorch loop.

LWL's experiments: the diagonal net (n = 50 samples, d = 100 and 1000, float64), labels
perturbed by ±δ at every step, Adam in AGM form (β₁ = 0.9, β₂ = 0.95, ε = 1e-6, no bias
correction), 10⁶ steps. Peers, timed in the same process:

  * ``ab.run`` (one compiled ``lax.scan``; ``save_every`` = all steps, no parameters
    recorded): steps per second of a warm call (the compiled program reused), the faster
    of two calls (as for the plain scan below: on a shared machine one call can be 1.5×
    slower than the next);
  * the authors' style: a Python for-loop over torch float64 tensors, the loss built each
    step and ``.backward()``, the AGM update written out; steady-state steps per second
    over ``--torch-steps`` steps after a warm-up (the loop's rate does not change with the
    number of steps);
  * for reference, a hand-written jitted ``lax.scan`` of the same step (what XLA gives
    without the engine's divergence checks and records);
  * 32 seeds: one vmapped ``ab.sweep`` against 32 sequential (warm) ``ab.run`` calls.

Both implementations are first checked to compute the same thing: a noise-free run of
``--check-steps`` steps from the same start on the same data, final parameters equal to 1e-10.

    .venv/bin/python benchmarks/bench_label_noise.py [--steps 1000000] [--torch-steps 20000]
        [--sweep-steps 20000] [--dims 100 1000]
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, __import__("os").path.dirname(__file__))
from common import once, report  # noqa: E402

import adabias as ab  # noqa: E402
from adabias import problems  # noqa: E402

N, K, DELTA = 50, 5, 0.5
LEARNING_RATE, BETA1, BETA2, EPS = 0.01, 0.9, 0.95, 1e-6


def adam_agm():
    return ab.optim.agm(LEARNING_RATE, BETA1, BETA2, ab.optim.diagonal, ab.optim.inverse_root(EPS))


OPTIMIZER = adam_agm()  # built once: ab.run reuses its compiled program only for the same objects
NOISE = problems.label_noise(DELTA)


def problem(d: int):
    key = jax.random.key(d)
    batch, _ = problems.sparse_regression_data(key, N, d, K)
    params0 = problems.init_diagonal_net(jax.random.fold_in(key, 1), d)
    return batch, params0


def run_jax(batch, params0, num_steps: int, delta: float, key):
    if delta not in (0.0, DELTA):
        raise ValueError(f"delta must be 0 or {DELTA}, got {delta!r}")
    noise = NOISE if delta else None
    trajectory = ab.run(OPTIMIZER, problems.diagonal_net_loss, params0, num_steps,
                        batches=jax.tree.map(lambda x: x[None], batch), noise=noise, key=key,
                        save_every=num_steps, save_params=not delta)
    return trajectory


def scan_rate(batch, params0, num_steps: int) -> float:
    """Steps per second of a hand-written jitted ``lax.scan`` of the same step (no engine):
    the floor XLA gives this update on this machine, for reference."""
    optimizer, noise = OPTIMIZER, NOISE

    @jax.jit
    def train(params, key):
        def body(carry, k):
            p, state = carry
            grads = jax.grad(problems.diagonal_net_loss)(p, noise(jax.random.fold_in(key, k), batch))
            updates, state = optimizer.update(grads, state, p)
            return (jax.tree.map(jnp.add, p, updates), state), None

        (p, _), _ = jax.lax.scan(body, (params, optimizer.init(params)), jnp.arange(num_steps))
        return problems.diagonal_net_loss(p, batch)

    key = jax.random.key(1)
    once(lambda: train(params0, key))
    return num_steps / min(once(lambda: train(params0, key)) for _ in range(2))


def run_torch(batch, params0, num_steps: int, delta: float, seed: int = 0):
    """The plain loop: torch float64 tensors, autograd ``.backward()``, the AGM update by hand."""
    import torch

    torch.manual_seed(seed)
    z = torch.tensor(np.asarray(batch["z"]), dtype=torch.float64)
    y = torch.tensor(np.asarray(batch["y"]), dtype=torch.float64)
    u = torch.tensor(np.asarray(params0["u"]), dtype=torch.float64, requires_grad=True)
    v = torch.tensor(np.asarray(params0["v"]), dtype=torch.float64, requires_grad=True)
    state = {p: (torch.zeros_like(p), torch.zeros_like(p)) for p in (u, v)}
    for _ in range(num_steps):
        target = y
        if delta:
            target = y + delta * (2.0 * torch.randint(0, 2, y.shape, dtype=torch.float64) - 1.0)
        loss = 0.5 * torch.mean((z @ (u * u - v * v) - target) ** 2)
        u.grad = v.grad = None
        loss.backward()
        with torch.no_grad():
            for p in (u, v):
                m, s = state[p]
                m.mul_(BETA1).add_(p.grad, alpha=1 - BETA1)
                s.mul_(BETA2).addcmul_(p.grad, p.grad, value=1 - BETA2)
                p.sub_(LEARNING_RATE * m / (s.sqrt() + EPS))
    return u.detach().numpy(), v.detach().numpy()


def check_same(batch, params0, check_steps: int) -> float:
    final = run_jax(batch, params0, check_steps, 0.0, jax.random.key(0)).final_params
    u, v = run_torch(batch, params0, check_steps, 0.0)
    return float(max(np.max(np.abs(np.asarray(final["u"]) - u)), np.max(np.abs(np.asarray(final["v"]) - v))))


def torch_rate(batch, params0, torch_steps: int) -> float:
    run_torch(batch, params0, 200, DELTA)  # warm-up
    start = time.perf_counter()
    run_torch(batch, params0, torch_steps, DELTA)
    return torch_steps / (time.perf_counter() - start)


def seeds_comparison(batch, d: int, sweep_steps: int, num_seeds: int = 32) -> tuple[float, float]:
    """Seeds per second: one ab.sweep over ``num_seeds`` seeds, and sequential warm ab.run calls."""
    batches = jax.tree.map(lambda x: x[None], batch)
    noise = NOISE
    init = lambda key: problems.init_diagonal_net(key, d)  # noqa: E731
    make = lambda learning_rate: ab.optim.agm(learning_rate, BETA1, BETA2, ab.optim.diagonal,  # noqa: E731
                                              ab.optim.inverse_root(EPS))
    base = jax.random.key(7)

    def swept():
        return ab.sweep(make, problems.diagonal_net_loss, None, sweep_steps, init_params=init,
                        grid={"learning_rate": [LEARNING_RATE]}, num_seeds=num_seeds, key=base,
                        batches=batches, noise=noise, save_every=sweep_steps, save_params=False).trajectory.loss

    optimizer = OPTIMIZER

    def sequential():
        losses = []
        for s in range(num_seeds):
            key = jax.random.fold_in(base, s)
            losses.append(ab.run(optimizer, problems.diagonal_net_loss, init(jax.random.fold_in(key, 1)),
                                 sweep_steps, batches=batches, noise=noise, key=key,
                                 save_every=sweep_steps, save_params=False).loss)
        return losses

    once(swept)
    once(lambda: sequential()[:1])  # compile
    sweep_time = min(once(swept) for _ in range(2))
    sequential_time = once(sequential)
    return num_seeds / sweep_time, num_seeds / sequential_time


def main(num_steps: int, torch_steps: int, sweep_steps: int, check_steps: int, dims: list[int]) -> None:
    rows = []
    for d in dims:
        batch, params0 = problem(d)
        difference = check_same(batch, params0, check_steps)
        if not difference <= 1e-10:
            raise AssertionError(f"d={d}: ab.run and the torch loop differ by {difference:.3g} after "
                                 f"{check_steps} noise-free steps")
        key = jax.random.key(1)
        cold = once(lambda: run_jax(batch, params0, num_steps, DELTA, key).loss)
        warm = min(once(lambda: run_jax(batch, params0, num_steps, DELTA, key).loss) for _ in range(2))
        jax_rate = num_steps / warm
        floor_rate = scan_rate(batch, params0, num_steps)
        rate_torch = torch_rate(batch, params0, torch_steps)
        sweep_rate, sequential_rate = seeds_comparison(batch, d, sweep_steps)
        rows.append({
            "d": d, "ab.run steps/s": jax_rate, "ab.run first call (s)": cold,
            "plain jitted scan steps/s": floor_rate, "torch loop steps/s": rate_torch,
            "ab.run / torch": jax_rate / rate_torch,
            "max abs Δθ, noise-free": difference,
            "sweep seeds/s": sweep_rate, "sequential ab.run seeds/s": sequential_rate,
            "sweep / sequential": sweep_rate / sequential_rate,
        })
    report("label_noise", rows,
           f"python benchmarks/bench_label_noise.py --steps {num_steps} --torch-steps {torch_steps} "
           f"--sweep-steps {sweep_steps} --dims {' '.join(map(str, dims))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1_000_000, help="steps of the ab.run timing")
    parser.add_argument("--torch-steps", type=int, default=20_000,
                        help="steps of the torch loop timing (steady-state rate)")
    parser.add_argument("--sweep-steps", type=int, default=20_000, help="steps per seed in the 32-seed timing")
    parser.add_argument("--check-steps", type=int, default=100,
                        help="noise-free steps of the equality check (rounding differences grow about "
                             "tenfold every 30 steps at d = 1000: 1e-13 at 100 steps, 1e-10 at 200)")
    parser.add_argument("--dims", type=int, nargs="+", default=[100, 1000])
    arguments = parser.parse_args()
    main(arguments.steps, arguments.torch_steps, arguments.sweep_steps, arguments.check_steps, arguments.dims)
