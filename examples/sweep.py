"""A grid of Adam hyperparameters × seeds, trained as one compiled program.

`ab.sweep` builds the optimizer from traced hyperparameter values, `vmap`s the training scan
over every (grid point, seed) member and compiles it once, whatever the number of values.
Each seed draws its own start here (`init_params` is a function of a key). `rows()` gives one
record per member; any per-member array reshaped to `grid_shape` has axes (grid..., seed).

    python examples/sweep.py
"""

import jax
import jax.numpy as jnp
import numpy as np

import adabias as ab

# a noiseless teacher: y = tanh(X w*) with 8 features, 128 samples
X = jax.random.normal(jax.random.key(1), (128, 8))
Y = jnp.tanh(X @ jnp.linspace(-1.0, 1.0, 8))


def loss_fn(params):
    return 0.5 * jnp.mean((jnp.tanh(X @ params["w"] + params["b"]) - Y) ** 2)


def init_params(key):
    """Each seed's start: w ~ N(0, I/8), b = 0."""
    return {"w": jax.random.normal(key, (8,)) / jnp.sqrt(8.0), "b": jnp.zeros(())}


def main(num_steps=1000, save_every=100, num_seeds=3, learning_rates=(1e-3, 1e-2, 1e-1),
         beta2s=(0.9, 0.99, 0.999)):
    eps = 1e-8
    grad = jax.grad(loss_fn)
    result = ab.sweep(
        # called with traced values: one compilation for every value of the grid
        lambda learning_rate, beta2: ab.optim.adam(learning_rate, 0.9, beta2, eps),
        loss_fn, None, num_steps, init_params=init_params,  # each seed draws its own start
        grid={"learning_rate": list(learning_rates), "beta2": list(beta2s)},
        num_seeds=num_seeds, key=jax.random.key(0), save_every=save_every,
        metrics={"one_norm": lambda p: ab.measures.one_norm(grad(p))})

    print(f"{result.num_members} members = grid {result.grid_shape[:-1]} × {num_seeds} seeds")
    print("learning_rate  beta2  seed  final_loss  final_one_norm")
    for row in result.rows():
        print(f"{row['learning_rate']:13.0e}  {row['beta2']:5.3f}  {row['seed']:4d}  "
              f"{row['final_loss']:10.3e}  {row['final_one_norm']:14.3e}")

    # the seed mean of the final loss, as a table over (learning_rate, beta2)
    final_loss = np.asarray(result.trajectory.loss[:, -1]).reshape(result.grid_shape)
    print("seed-mean final loss (rows: learning_rate, columns: beta2)")
    for rate, row in zip(learning_rates, final_loss.mean(axis=-1)):
        print(f"{rate:8.0e} " + " ".join(f"{value:10.3e}" for value in row))
    # one member's trajectory, as ab.run would return it
    best = int(np.argmin(np.asarray(result.trajectory.loss[:, -1])))
    print(f"best member {best}: {result.member(best).loss[-1]:.3e}")
    return result


if __name__ == "__main__":
    main()
