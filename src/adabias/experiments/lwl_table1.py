"""LWL Table 1: each AGM row from its (V, S), its dedicated optimizer, and its sharpness measure.

The AGM of LWL (DESIGN §3.5, no bias correction)

    m_{k+1} = β₁m_k + (1−β₁)∇ℓ_k,  v_{k+1} = β₂v_k + (1−β₂)V(∇ℓ_k∇ℓ_kᵀ),  θ_{k+1} = θ_k − ηS(v_{k+1})m_{k+1}

is built with ``optim.agm(η, β₁, β₂, V, S)`` for every row of Table 1 and run next to the
dedicated optimizer (``adam`` with ε outside the root and no bias correction, ``adam_mini``,
``adalayer``, ``adame``, ``rmsprop`` in the same convention) and next to a plain NumPy loop of
the recursion with the diagonal net's gradient written by hand, on the same label-noise draws.

Each row reduces, under label noise, the measure whose gradient is the semi-gradient of
tr(S H) with S = S(V(αDiag H)) frozen: Σ_B |B|·(mean_{i∈B} H_ii)^{1−λ} with λ = 1/2 for the
square-root rows (blocks of one coordinate for Adam/RMSProp, Adam-mini's blocks, Adalayer's
leaves). On the diagonal net's manifold Diag(H) = 4·m₂⊙(u², v²), m₂ = mean_i z_i² per
coordinate, which gives the closed forms of :func:`implied_measure_closed_form`.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adabias as ab
from adabias import measures
from adabias._validation import require_x64
from adabias.experiments.base import Context, Result, experiment, make_claim
from adabias.problems.diagonal_net import diagonal_net_diag_power_trace
from adabias.experiments.plotting import panels
from adabias.optim import block_mean, diagonal, inverse_power, inverse_root, leaf_mean
from adabias.problems import diagonal_net_loss, init_diagonal_net, label_noise, sparse_regression_data

SETTINGS = {
    "d": 6, "n": 3, "k": 1, "delta": 0.5, "init_scale": 0.5,
    "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8,
    "lams": [0.25, 0.75], "num_steps": 300, "num_points": 4, "point_scale": 0.7,
    "update_tolerance": 1e-12, "numpy_tolerance": 1e-10, "measure_tolerance": 1e-10,
}

ROWS = ("Adam", "Adam-mini", "Adalayer", "AdamE", "RMSProp")


def pair_blocks(d: int) -> dict:
    """Adam-mini blocks B_i = {u_i, v_i} (block ids shared across the two leaves)."""
    ids = jnp.arange(d, dtype=jnp.int32)
    return {"u": ids, "v": ids}


def implied_measure_closed_form(row: str, params: dict, z: jax.Array, lam: float = 0.5) -> jax.Array:
    """The row's measure Σ_B |B|·(mean_{i∈B} H_ii)^{1−λ} at a point of Γ, from u, v and m₂.

    With Diag(H) = 4m₂⊙(u², v²) (m₂ = mean_i z_i², per coordinate):

    * Adam, RMSProp (λ = 1/2):  tr(Diag(H)^{1/2}) = 2 Σ_j √m₂ⱼ (|u_j| + |v_j|).
    * AdamE-λ:  tr(Diag(H)^{1−λ}) = 4^{1−λ} Σ_j m₂ⱼ^{1−λ} (|u_j|^{2(1−λ)} + |v_j|^{2(1−λ)}).
    * Adam-mini, blocks {u_j, v_j}:  Σ_j 2·√(mean(4m₂ⱼu_j², 4m₂ⱼv_j²)) = 2√2 Σ_j √(m₂ⱼ(u_j² + v_j²)).
    * Adalayer, leaves u and v:  d·√(mean_j 4m₂ⱼu_j²) + d·√(mean_j 4m₂ⱼv_j²)
      = 2√d (√(Σ_j m₂ⱼu_j²) + √(Σ_j m₂ⱼv_j²)).
    """
    u, v = params["u"], params["v"]
    m2 = jnp.mean(jnp.asarray(z) ** 2, axis=0)
    if row in ("Adam", "RMSProp"):
        return diagonal_net_diag_power_trace(params, z, 0.5)
    if row == "AdamE":
        return diagonal_net_diag_power_trace(params, z, 1.0 - lam)
    if row == "Adam-mini":
        return 2.0 * jnp.sqrt(2.0) * jnp.sum(jnp.sqrt(m2 * (u**2 + v**2)))
    if row == "Adalayer":
        d = u.shape[-1]
        return 2.0 * jnp.sqrt(d) * (jnp.sqrt(jnp.sum(m2 * u**2)) + jnp.sqrt(jnp.sum(m2 * v**2)))
    raise ValueError(f"row must be one of {ROWS}, got row={row!r}")


def _row_pieces(row: str, settings: dict, lam: float):
    """(V, S, β₁, dedicated optimizer, NumPy V, NumPy S, power) for one row of Table 1."""
    lr, b1, b2, eps = settings["learning_rate"], settings["beta1"], settings["beta2"], settings["eps"]
    d = settings["d"]
    root = inverse_root(eps)
    numpy_root = lambda v: 1.0 / (np.sqrt(v) + eps)
    identity = lambda g2: g2
    if row == "Adam":
        return (diagonal, root, b1,
                ab.optim.adam(lr, b1, b2, eps, eps_inside_sqrt=False, bias_correction=False),
                identity, numpy_root, 0.5)
    if row == "RMSProp":
        return (diagonal, root, 0.0,
                ab.optim.rmsprop(lr, b2, eps, eps_inside_sqrt=False, bias_correction=False),
                identity, numpy_root, 0.5)
    if row == "AdamE":
        return (diagonal, inverse_power(lam, eps), b1,
                ab.optim.adame(lr, lam, b1, b2, eps), identity,
                lambda v: 1.0 / (np.power(v, lam) + eps), 1.0 - lam)
    if row == "Adam-mini":
        blocks = pair_blocks(d)
        numpy_pair_mean = lambda g2: np.tile((g2[:d] + g2[d:]) / 2, 2)  # flat order (u, v)
        return (block_mean(blocks), root, b1, ab.optim.adam_mini(lr, blocks, b1, b2, eps),
                numpy_pair_mean, numpy_root, 0.5)
    if row == "Adalayer":
        numpy_leaf_mean = lambda g2: np.concatenate([np.full(d, g2[:d].mean()), np.full(d, g2[d:].mean())])
        return (leaf_mean, root, b1, ab.optim.adalayer(lr, b1, b2, eps), numpy_leaf_mean,
                numpy_root, 0.5)
    raise ValueError(f"row must be one of {ROWS}, got row={row!r}")


def numpy_agm_diagonal_net(params0: dict, z: np.ndarray, noisy_y: np.ndarray, lr: float, beta1: float,
                           beta2: float, V: Callable, S: Callable,
                           forced: Optional[np.ndarray] = None) -> np.ndarray:
    """The AGM recursion as a NumPy loop on θ = (u, v), gradient of ½·mean(⟨u²−v², z⟩ − y)² by hand.

    ∂L/∂u = 2u⊙(Zᵀr/n), ∂L/∂v = −2v⊙(Zᵀr/n), r = Z(u² − v²) − y_k; returns θ at steps 0..K.
    With ``forced`` (rows θ_0 … θ_K of another run) each step starts from ``forced[k]``: the
    result's row k+1 is then that run's step k recomputed here, so comparing it with
    ``forced[k+1]`` checks every step without the growth of rounding differences along a
    noisy trajectory (m and v are carried by the loop: their recursions are contractive).
    """
    u, v = np.array(params0["u"], float), np.array(params0["v"], float)
    theta = np.concatenate([u, v])
    d, n = u.size, z.shape[0]
    m, stat = np.zeros(2 * d), np.zeros(2 * d)
    out = [theta.copy()]
    for k, y in enumerate(noisy_y):
        if forced is not None:
            theta = np.array(forced[k], float)
        u, v = theta[:d], theta[d:]
        r = z @ (u * u - v * v) - y
        dw = z.T @ r / n
        g = np.concatenate([2 * u * dw, -2 * v * dw])
        m = beta1 * m + (1 - beta1) * g
        stat = beta2 * stat + (1 - beta2) * V(g * g)
        theta = theta - lr * S(stat) * m
        out.append(theta.copy())
    return np.array(out)


def _flat_path(params: dict) -> np.ndarray:
    """Recorded (u, v) as rows θ_k = (u_k, v_k)."""
    return np.concatenate([np.asarray(params["u"]), np.asarray(params["v"])], axis=1)


def _label(row: str, lam: float) -> str:
    return f"AdamE-{lam:g}" if row == "AdamE" else row


def side_by_side(optimizers: dict) -> optax.GradientTransformation:
    """Run several optimizers at once on params {name: params_name}, each on its own copy.

    With the summed loss Σ_name L(params_name) every copy receives exactly its own gradient, so
    the copies evolve as separate runs that share the label-noise draws (one compiled program).
    """

    def init_fn(params):
        return {name: optimizer.init(params[name]) for name, optimizer in optimizers.items()}

    def update_fn(updates, state, params=None):
        out = {name: optimizer.update(updates[name], state[name], None if params is None else params[name])
               for name, optimizer in optimizers.items()}
        return {name: o[0] for name, o in out.items()}, {name: o[1] for name, o in out.items()}

    return optax.GradientTransformation(init_fn, update_fn)


def _summed_loss(params: dict, batch: dict) -> jax.Array:
    """Σ over the copies of ½·mean(⟨u²−v², z⟩ − y)²: the gradient of copy c is ∇L(params_c)."""
    return sum(diagonal_net_loss(p, batch) for p in params.values())


def manifold_points(key: jax.Array, z: jax.Array, y: jax.Array, num_points: int, scale: float) -> dict:
    """Points of Γ = {(u, v): Z(u² − v²) = y} (stacked along a leading axis), constructed exactly.

    Draw u, v ~ N(0, scale²); move w = u² − v² to the nearest w' with Zw' = y
    (w' = w − Z⁺(Zw − y)); then change one of each pair so that u² − v² = w': u_j ← sgn(u_j)√(w'_j + v_j²)
    where w'_j + v_j² ≥ 0, else v_j ← sgn(v_j)√(u_j² − w'_j) (then u_j² − w'_j > 0).
    """
    d = z.shape[1]
    draws = scale * jax.random.normal(key, (num_points, 2, d), dtype=z.dtype)
    u, v = draws[:, 0], draws[:, 1]
    w = u**2 - v**2
    w = w - (jnp.linalg.pinv(z) @ (w @ z.T - y).T).T
    u_fits = w + v**2 >= 0
    new_u = jnp.where(u_fits, jnp.sign(u) * jnp.sqrt(jnp.where(u_fits, w + v**2, 0.0)), u)
    new_v = jnp.where(u_fits, v, jnp.sign(v) * jnp.sqrt(jnp.where(u_fits, 0.0, u**2 - w)))
    return {"u": new_u, "v": new_v}


def _row_labels(settings: dict) -> list[tuple[str, float]]:
    labels = []
    for row in ROWS:
        lams = settings["lams"] if row == "AdamE" else [0.5]
        labels.extend((row, float(lam)) for lam in lams)
    return labels


@experiment(
    id="lwl.table1", paper="LWL", title="Table 1: AGM rows (V, S), their optimizers and their sharpness measures",
    quick=SETTINGS, full=SETTINGS,
    claims={
        "lwl.table1.updates": "Every row of Table 1 built from its V and S with the AGM recursion is "
            "the dedicated optimizer (Adam without bias correction, ε outside the root; Adam-mini; "
            "Adalayer; AdamE-λ; RMSProp) step by step under label noise (max |Δθ| ≤ 1e-12).",
        "lwl.table1.numpy": "Every row's steps equal a plain NumPy loop of the AGM recursion with "
            "the diagonal net's gradient written by hand: from each recorded θ_k the loop's step "
            "gives the recorded θ_{k+1} (max |Δθ|/max|θ| ≤ 1e-10 over all steps).",
        "lwl.table1.measures": "Each row's implied measure Σ_B |B|·(mean_B H_ii)^{1−λ}, computed from "
            "Hessian-vector products with the row's V, equals its closed form on the diagonal net's "
            "manifold (relative error ≤ 1e-10): tr(Diag H^{1/2}) = 2Σ√m₂(|u|+|v|), "
            "4^{1−λ}Σm₂^{1−λ}(|u|^{2−2λ}+|v|^{2−2λ}), 2√2Σ√(m₂(u²+v²)), 2√d(‖√m₂u‖+‖√m₂v‖).",
    },
)
def run(settings: dict, context: Context) -> Result:
    require_x64("lwl.table1")
    d, n, steps = settings["d"], settings["n"], settings["num_steps"]
    batch, _ = sparse_regression_data(jax.random.key(0), n, d, settings["k"], features="gaussian")
    batches = jax.tree.map(lambda x: x[None], batch)
    noise = label_noise(settings["delta"])
    key = jax.random.key(3)
    params0 = init_diagonal_net(jax.random.key(1), d, settings["init_scale"])
    # the labels the engine draws at step k: noise(fold_in(key, k), batch)
    noisy_y = np.asarray(jax.vmap(lambda k: noise(jax.random.fold_in(key, k), batch)["y"])(jnp.arange(steps)))
    z = np.asarray(batch["z"])
    points = manifold_points(jax.random.key(7), batch["z"], batch["y"], settings["num_points"],
                             settings["point_scale"])
    point_losses = np.asarray(jax.vmap(lambda p: diagonal_net_loss(p, batch))(points))

    labels = _row_labels(settings)
    lr, b2 = settings["learning_rate"], settings["beta2"]
    pieces = {_label(row, lam): (row, lam) + _row_pieces(row, settings, lam) for row, lam in labels}
    # every row twice (built from V, S / dedicated) side by side: one program, the same label draws
    optimizers = {}
    for label, (row, lam, V, S, b1, dedicated, *_rest) in pieces.items():
        optimizers[f"agm {label}"] = ab.optim.agm(lr, b1, b2, V, S)
        optimizers[f"dedicated {label}"] = dedicated
    trajectory = ab.run(side_by_side(optimizers), _summed_loss, {name: params0 for name in optimizers}, steps,
                        batches=batches, noise=noise, key=key)
    statistics = {label: (piece[2], piece[-1]) for label, piece in pieces.items()}
    computed_all = jax.jit(jax.vmap(lambda p: {
        label: measures.diag_power_trace(diagonal_net_loss, p, batch, power=power, statistic=V)
        for label, (V, power) in statistics.items()}))(points)

    table = {name: [] for name in ("optimizer", "lam", "V", "S", "measure", "max_diff_agm_vs_dedicated",
                                   "max_rel_diff_vs_numpy", "measure_max_rel_error")}
    diff_paths, measure_pairs = {}, {}
    for label, (row, lam, V, S, b1, dedicated, numpy_v, numpy_s, power) in pieces.items():
        built_path = _flat_path(trajectory.params[f"agm {label}"])
        dedicated_path = _flat_path(trajectory.params[f"dedicated {label}"])
        reference = numpy_agm_diagonal_net(params0, z, noisy_y, lr, b1, b2, numpy_v, numpy_s,
                                           forced=built_path)
        agm_gap = np.max(np.abs(built_path - dedicated_path), axis=1)
        numpy_gap = np.max(np.abs(built_path - reference), axis=1) / np.max(np.abs(reference))
        computed = np.asarray(computed_all[label])
        closed = np.asarray(jax.vmap(lambda p: implied_measure_closed_form(row, p, z, lam))(points))
        diff_paths[label] = (agm_gap, numpy_gap)
        measure_pairs[label] = (closed, computed)
        table["optimizer"].append(label)
        table["lam"].append(lam)
        table["V"].append({"Adam-mini": "mean over {u_j, v_j}", "Adalayer": "mean over leaf"}.get(row, "diag"))
        table["S"].append(f"1/(v^{lam:g}+eps)" if row == "AdamE" else "1/(sqrt(v)+eps)")
        table["measure"].append({
            "Adam": "2 sum sqrt(m2)(|u|+|v|)", "RMSProp": "2 sum sqrt(m2)(|u|+|v|)",
            "AdamE": f"4^{1 - lam:g} sum m2^{1 - lam:g}(|u|^{2 - 2 * lam:g}+|v|^{2 - 2 * lam:g})",
            "Adam-mini": "2 sqrt(2) sum sqrt(m2(u^2+v^2))",
            "Adalayer": "2 sqrt(d)(sqrt(sum m2 u^2)+sqrt(sum m2 v^2))"}[row])
        table["max_diff_agm_vs_dedicated"].append(float(agm_gap.max()))
        table["max_rel_diff_vs_numpy"].append(float(numpy_gap.max()))
        table["measure_max_rel_error"].append(float(np.max(np.abs(computed - closed) / np.abs(closed))))

    figure, axes = panels(1, 2, width=4.4, height=3.4)
    floor = 1e-18
    for index, (label, (agm_gap, numpy_gap)) in enumerate(diff_paths.items()):
        color = f"C{index}"
        axes[0, 0].semilogy(np.maximum(numpy_gap, floor), color=color, label=f"{label}: vs NumPy loop")
        axes[0, 0].semilogy(np.maximum(agm_gap, floor), ":", color=color, lw=2)
        closed, computed = measure_pairs[label]
        axes[0, 1].plot(closed, computed, "o", color=color, ms=5, label=label)
    axes[0, 0].set_title("agm(V, S) iterates: vs one NumPy step from θ_k (solid),\nvs dedicated optimizer (dotted; 0 drawn at 1e-18)")
    axes[0, 0].set_xlabel("step k")
    axes[0, 0].set_ylabel("max |Δθ| (relative for NumPy)")
    axes[0, 0].legend(fontsize=7)
    line = np.array([min(min(c.min(), m.min()) for c, m in measure_pairs.values()),
                     max(max(c.max(), m.max()) for c, m in measure_pairs.values())])
    axes[0, 1].plot(line, line, "k-", lw=0.8, label="y = x")
    axes[0, 1].set_title(f"implied measure at {settings['num_points']} points of Γ")
    axes[0, 1].set_xlabel("closed form from (u, v, m₂)")
    axes[0, 1].set_ylabel("Σ_B|B|·mean_B(H_ii)^{1−λ} from HVPs")
    axes[0, 1].legend(fontsize=7)

    exp = run_entry
    per_row = lambda column: dict(zip(table["optimizer"], table[column]))
    claims = [
        make_claim(exp, "lwl.table1.updates",
                   max(table["max_diff_agm_vs_dedicated"]) <= settings["update_tolerance"],
                   {"max_abs_difference": per_row("max_diff_agm_vs_dedicated"), "steps": steps}, settings),
        make_claim(exp, "lwl.table1.numpy",
                   max(table["max_rel_diff_vs_numpy"]) <= settings["numpy_tolerance"],
                   {"max_relative_difference": per_row("max_rel_diff_vs_numpy"), "steps": steps}, settings),
        make_claim(exp, "lwl.table1.measures",
                   max(table["measure_max_rel_error"]) <= settings["measure_tolerance"],
                   {"max_relative_error": per_row("measure_max_rel_error"),
                    "max_loss_at_points": float(point_losses.max())}, settings),
    ]
    notes = [
        f"Diagonal net d = {d}, n = {n}, Gaussian features, label noise δ = {settings['delta']}, init "
        f"u = v = {settings['init_scale']}·g; η = {lr}, β₁ = {settings['beta1']} (0 for RMSProp), "
        f"β₂ = {b2}, ε = {settings['eps']}, {steps} steps, float64; every run sees the same label draws.",
        "Adam-mini blocks pair u_j with v_j (one block across the two leaves); Adalayer's layers are the "
        "leaves u and v. Measures at points of Γ built from N(0, "
        f"{settings['point_scale']}²) draws with exact zero residual (max loss there {point_losses.max():.1e}).",
    ]
    data = {"rows": {k: np.asarray(v) for k, v in table.items()}}
    return Result(figures={"rows": figure}, data=data, claims=claims, notes=notes)


run_entry = run
