"""A model written in the equinox style, trained by adabias.

adabias optimizes any parameter pytree, so a model object works once its arrays are split
from everything else: `eqx.partition(model, eqx.is_inexact_array)` gives (params, static),
the loss recombines them with `eqx.combine(params, static)`, and `ab.run` sees only the
arrays. With equinox installed (it comes with diffrax, which adabias depends on) the model is
an `eqx.nn.MLP`; without it the same pattern is shown on a hand-made pytree model with the
two helpers written out below.

    python examples/equinox_model.py
"""

import jax
import jax.numpy as jnp

import adabias as ab

try:
    import equinox as eqx
except ImportError:  # the same pattern without equinox
    eqx = None


# --- a hand-made model: a pytree of arrays plus static parts (here the activation) ---------

def make_mlp(key, sizes=(1, 16, 16, 1), activation=jnp.tanh):
    keys = jax.random.split(key, len(sizes) - 1)
    layers = [{"weight": jax.random.normal(k, (n_out, n_in)) / jnp.sqrt(n_in), "bias": jnp.zeros(n_out)}
              for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]
    return {"layers": layers, "activation": activation}


def apply_mlp(model, x):
    """One input vector x → output vector, like calling an eqx.nn.MLP."""
    *hidden, last = model["layers"]
    for layer in hidden:
        x = model["activation"](layer["weight"] @ x + layer["bias"])
    return last["weight"] @ x + last["bias"]


def partition(model):
    """(arrays, static): what eqx.partition(model, eqx.is_inexact_array) does for this pytree."""
    is_array = lambda leaf: isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.inexact)
    arrays = jax.tree.map(lambda leaf: leaf if is_array(leaf) else None, model)
    static = jax.tree.map(lambda leaf: None if is_array(leaf) else leaf, model)
    return arrays, static


def combine(arrays, static):
    """The inverse of partition (eqx.combine)."""
    return jax.tree.map(lambda a, s: s if a is None else a, arrays, static,
                        is_leaf=lambda leaf: leaf is None)


# --- the model, its loss on the combined model, and training -------------------------------

def main(num_steps=2000, save_every=200, use_equinox=None):
    use_equinox = eqx is not None if use_equinox is None else use_equinox
    key = jax.random.key(0)
    x = jnp.linspace(-1.0, 1.0, 32)[:, None]
    y = jnp.sin(3.0 * x)

    if use_equinox:
        model = eqx.nn.MLP(in_size=1, out_size=1, width_size=16, depth=2,
                           activation=jnp.tanh, key=key)
        params, static = eqx.partition(model, eqx.is_inexact_array)
        call = lambda params: jax.vmap(eqx.combine(params, static))(x)
    else:
        model = make_mlp(key)
        params, static = partition(model)
        call = lambda params: jax.vmap(lambda xi: apply_mlp(combine(params, static), xi))(x)

    def loss_fn(params):  # only the arrays are optimized; static parts come from the closure
        return 0.5 * jnp.mean((call(params) - y) ** 2)

    opt = ab.optim.adam(1e-2, beta1=0.9, beta2=0.999, eps=1e-8)
    # the sharpness λ_max(∇²E) along training, from Hessian-vector products only
    metrics = {"top_eigenvalue": lambda p: ab.measures.top_eigenvalue(loss_fn, p, num_iters=20)}
    trajectory = ab.run(opt, loss_fn, params, num_steps, save_every=save_every, metrics=metrics)

    num_params = sum(leaf.size for leaf in jax.tree.leaves(params))
    print(f"model: {'eqx.nn.MLP' if use_equinox else 'hand-made pytree MLP'}, {num_params} parameters")
    print("step         loss   λ_max(H)")
    for i, step in enumerate(trajectory.steps):
        print(f"{int(step):5d}  {float(trajectory.loss[i]):.3e}  "
              f"{float(trajectory.metrics['top_eigenvalue'][i]):.3e}")
    # the trained model object, ready to call
    trained = (eqx.combine(trajectory.final_params, static) if use_equinox
               else combine(trajectory.final_params, static))
    prediction = trained(x[5]) if use_equinox else apply_mlp(trained, x[5])
    print(f"f(x = {float(x[5, 0]):.3f}) = {float(prediction[0]):.4f}, "
          f"target {float(y[5, 0]):.4f}")
    return trajectory


if __name__ == "__main__":
    main()
