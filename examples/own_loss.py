"""Adam on your own JAX loss, with a regularizer recorded along training.

The loss is a small two-layer tanh network fitted to y = sin(3x) + x/2, written in plain JAX:
any function of a parameter pytree works. `ab.optim.adam` is Adam as CKS write it (Definition
2.1: ε inside the square root, bias-corrected); `ab.run` trains it as one compiled `lax.scan`
and evaluates the metrics every `save_every` steps. The metric is the perturbed one-norm
‖∇E‖₁,ε = Σᵢ √(∂ᵢE² + ε), the quantity Adam's implicit bias (CKS (2.3)) penalizes.

    python examples/own_loss.py
"""

import jax
import jax.numpy as jnp

import adabias as ab

# data: 64 points of a smooth target on [-1, 1]
X = jnp.linspace(-1.0, 1.0, 64)[:, None]
Y = jnp.sin(3.0 * X[:, 0]) + 0.5 * X[:, 0]


def loss_fn(params):
    """E(θ) = ½·mean_i (f_θ(x_i) − y_i)², f_θ(x) = tanh(x W + b) · a + c."""
    hidden = jnp.tanh(X @ params["W"] + params["b"])
    prediction = hidden @ params["a"] + params["c"]
    return 0.5 * jnp.mean((prediction - Y) ** 2)


def init(key, width=16):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"W": jax.random.normal(k1, (1, width)), "b": 0.5 * jax.random.normal(k2, (width,)),
            "a": jax.random.normal(k3, (width,)) / jnp.sqrt(width), "c": jnp.zeros(())}


def main(num_steps=2000, save_every=200, learning_rate=1e-2, eps=1e-6):
    params0 = init(jax.random.key(0))
    opt = ab.optim.adam(learning_rate, beta1=0.9, beta2=0.999, eps=eps)

    # metrics: name -> fn(params), evaluated at the saved steps 0, save_every, ..., num_steps
    grad = jax.grad(loss_fn)
    metrics = {"one_norm_eps": lambda p: ab.measures.perturbed_one_norm(grad(p), eps),
               "one_norm": lambda p: ab.measures.one_norm(grad(p))}
    trajectory = ab.run(opt, loss_fn, params0, num_steps, save_every=save_every, metrics=metrics)

    # a Trajectory holds steps, loss, metrics and params at the saved steps
    print("step         loss    ‖∇E‖₁,ε      ‖∇E‖₁")
    for i, step in enumerate(trajectory.steps):
        print(f"{int(step):5d}  {float(trajectory.loss[i]):.3e}  "
              f"{float(trajectory.metrics['one_norm_eps'][i]):.3e}  "
              f"{float(trajectory.metrics['one_norm'][i]):.3e}")
    # ‖∇E‖₁,ε ≥ p·√ε (here 49·√ε): near a minimum it stays at that floor
    num_params = sum(x.size for x in jax.tree.leaves(params0))
    print(f"p·√ε = {num_params * eps ** 0.5:.3e}")
    print(f"diverged_at: {int(trajectory.diverged_at)}   (-1: never)")
    return trajectory


if __name__ == "__main__":
    main()
