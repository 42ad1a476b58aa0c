"""What a field is: diffrax's ``f(t, y, args) -> dy/dt`` (:data:`Field`), for every flow of
:mod:`adabias.flows`; an autonomous field ignores t, and ``args`` is None.

A field that changes at every step t_n = fl(n·h), like CKS Theorem 3.1's (3.2) on
[nh, (n+1)h), is a :class:`PiecewiseField`: the same callable together with its step size h,
so that :func:`adabias.flows.solve` can tell the step-size controller where the jumps are (it
stops just before t_n and restarts after it instead of stepping across a discontinuity).
:func:`step_index` is the piece n of a time t; :func:`switch` picks one of several fields by a
traced index (several flows in one compiled :func:`adabias.flows.solve_steps`).

A first-order modified flow θ̇ = leading(θ) + correction(θ), the correction O(h), is a
:class:`ModifiedField`: the same callable together with ``terms(t, y)`` returning the two
(:class:`Terms`), which :mod:`adabias.flows.regime` compares (the asymptotic-regime check).

**Fields are pytrees** (as equinox's modules): in :class:`PiecewiseField`, :class:`ModifiedField`
and :class:`Formula` every array or number they carry (h, β, ρ, ε, data) is a leaf and every
callable (the loss, a plain-function field) is static, compared by identity. The flows of
:mod:`adabias.flows` are built from :class:`Formula` (a module-level rule, its loss and its
hyperparameters), so :func:`adabias.flows.solve` — diffrax's ``diffeqsolve``, compiled by
``equinox.filter_jit`` — compiles once per loss and shapes and reuses that program for a new h
or β. A field written as a closure is static as a whole: each new closure compiles again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from adabias._validation import is_concrete

PyTree = Any
#: ``f(t, y, args) -> dy/dt``, diffrax's vector-field signature.
Field = Callable[[jax.Array, PyTree, Any], PyTree]

__all__ = ["Field", "Formula", "PiecewiseField", "ModifiedField", "Terms", "step_index",
           "switch", "terms_of"]


def step_index(t: jax.Array, learning_rate: float) -> jax.Array:
    """The piece n of t: the largest n ≥ 0 with fl(n·h) ≤ t (robust to rounding of t/h)."""
    n = jnp.floor(t / learning_rate).astype(jnp.int32)
    n = jnp.where(n.astype(t.dtype) * learning_rate > t, n - 1, n)
    n = jnp.where((n + 1).astype(t.dtype) * learning_rate <= t, n + 1, n)
    return jnp.maximum(n, 0)


def _is_none(x) -> bool:
    return x is None


def _pytree(*, static: tuple[str, ...] = ()):
    """Register a frozen dataclass as a pytree the way equinox filters a module: in every field
    not named in ``static``, the callables found among its leaves (a loss, a plain-function
    field) are static and everything else (arrays, numbers, data) is a child; the ``static``
    fields are static as a whole. Static parts are compared by equality (identity for
    functions) when a compiled program is looked up. A None stands for a leaf (as in
    ``equinox.partition``), so a tree whose leaves were replaced by None keeps its shape."""

    def register(cls):
        names = [f.name for f in dataclasses.fields(cls)]
        dynamic = [name for name in names if name not in static]

        def flatten(obj):
            children, layout = [], []
            for name in dynamic:
                leaves, treedef = jax.tree.flatten(getattr(obj, name), is_leaf=_is_none)
                fixed = tuple(leaf if callable(leaf) else None for leaf in leaves)
                mask = tuple(callable(leaf) for leaf in leaves)
                children.extend(leaf for leaf, is_static in zip(leaves, mask) if not is_static)
                layout.append((treedef, mask, fixed))
            return children, (tuple(layout), tuple(getattr(obj, name) for name in static))

        def unflatten(aux, children):
            layout, static_values = aux
            children = iter(children)
            values = {}
            for name, (treedef, mask, fixed) in zip(dynamic, layout):
                leaves = [value if is_static else next(children)
                          for value, is_static in zip(fixed, mask)]
                values[name] = jax.tree.unflatten(treedef, leaves)
            values.update(zip(static, static_values))
            obj = object.__new__(cls)
            for name in names:
                object.__setattr__(obj, name, values[name])
            return obj

        jax.tree_util.register_pytree_node(cls, flatten, unflatten)
        return cls

    return register


@_pytree(static=("rule", "options"))
@dataclasses.dataclass(frozen=True, eq=False)
class Formula:
    """A field ``f(t, y, args)`` = ``rule(t, y, *operands, **dict(options))``: a module-level
    ``rule``, its ``operands`` (the loss — static — and the hyperparameters and data — pytree
    leaves) and static ``options`` (window sizes, counts: ``(name, value)`` pairs). Fields
    built this way differ only in their leaves when only h, β, ρ, ε or the data change, so
    :func:`adabias.flows.solve` reuses its compilation. ``args`` is ignored."""

    rule: Callable[..., PyTree]
    operands: tuple
    options: tuple = ()

    def __call__(self, t, y, args=None):
        return self.rule(t, y, *self.operands, **dict(self.options))


@_pytree()
@dataclasses.dataclass(frozen=True, eq=False)
class PiecewiseField:
    """A field ``f(t, y, args)`` that jumps at t_n = fl(n·h), n = 0, 1, …; callable as ``f``.

    ``step_size`` is h: a number or array, traced inside :func:`adabias.flows.solve_steps`
    (a pytree leaf, like the arrays ``vector_field`` carries, so the field can pass through
    ``jit`` and ``vmap``; a plain-function ``vector_field`` is static).
    """

    vector_field: Field
    step_size: float | jax.Array

    def __call__(self, t, y, args=None):
        return self.vector_field(t, y, args)

    def jump_times(self, t0: float, t1: float) -> jax.Array:
        """The grid fl(n·h) inside [t0, t1] (needs a concrete h)."""
        if not is_concrete(self.step_size):
            raise ValueError("solve needs a concrete step size to place the jumps of a "
                             "PiecewiseField; use solve_steps for a traced one")
        h = float(self.step_size)
        lower, upper = min(t0, t1), max(t0, t1)
        grid = jnp.arange(math.floor(lower / h) - 1, math.floor(upper / h) + 2) * h
        return grid[(grid >= lower) & (grid <= upper)]


class Terms(NamedTuple):
    """A modified flow's right-hand side split in two: leading + correction (O(h))."""

    leading: PyTree
    correction: PyTree


@_pytree(static=("name",))
@dataclasses.dataclass(frozen=True, eq=False)
class ModifiedField:
    """A field ``f(t, y, args)`` = leading + first-order correction; callable as ``f``.

    ``terms(t, y)`` gives the two parts (:class:`Terms`) for the regime check of
    :func:`adabias.flows.solve`; ``name`` says which flow it is in that check's warning.
    """

    vector_field: Field
    terms: Callable[[jax.Array, PyTree], Terms]
    name: str

    def __call__(self, t, y, args=None):
        return self.vector_field(t, y, args)


def terms_of(field: Field) -> Callable[[jax.Array, PyTree], Terms] | None:
    """The ``terms`` of a (piecewise) :class:`ModifiedField`; None for any other field."""
    inner = field.vector_field if isinstance(field, PiecewiseField) else field
    return inner.terms if isinstance(inner, ModifiedField) else None


def switch(fields: Sequence[Field], index: jax.Array) -> Field:
    """The field ``fields[index]`` for a traced ``index`` (``lax.switch``), so that several
    flows share one compiled solve (:func:`adabias.flows.solve_steps`). Piecewise fields
    switch into a :class:`PiecewiseField` with the chosen field's step size; the fields must
    be all piecewise or none. When some are :class:`ModifiedField`, the result is one too
    (a field without a correction counts as leading = f, correction = 0)."""
    fields = tuple(fields)
    piecewise = [isinstance(f, PiecewiseField) for f in fields]
    if any(piecewise) and not all(piecewise):
        raise ValueError("switch needs fields that are all PiecewiseField or none, got "
                         f"piecewise={piecewise}")

    def field(t, y, args=None):
        return jax.lax.switch(index, fields, t, y, args)

    if any(terms_of(f) is not None for f in fields):
        branches = [terms_of(f) or _uncorrected(f) for f in fields]
        field = ModifiedField(field, lambda t, y: jax.lax.switch(index, branches, t, y), "switch")
    if all(piecewise):
        return PiecewiseField(field, jnp.stack([jnp.asarray(f.step_size) for f in fields])[index])
    return field


def _uncorrected(field: Field) -> Callable[[jax.Array, PyTree], Terms]:
    def terms(t, y):
        rate = field(t, y, None)
        return Terms(rate, jax.tree.map(jnp.zeros_like, rate))

    return terms
