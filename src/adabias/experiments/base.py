"""Experiments, claims and the registry (DESIGN §4.2).

An :class:`Experiment` reproduces one figure or table of a paper: it has an ``id`` (e.g.
``"cks.fig1"``), ``quick`` and ``full`` settings, the claims it decides (declared up front,
so ``adabias list`` can show them) and a function ``run(settings, context) -> Result``.
A :class:`Claim` is a sentence of the paper made measurable; ``held`` is computed from the
run, every time, and ``numbers`` are the values it was decided on.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np


def _plain(value: Any) -> Any:
    """Numbers and arrays as JSON-ready Python values (floats, ints, lists, None for NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) or value is None:
        return value
    array = np.asarray(value)
    if array.ndim == 0:
        x = array.item()
        if isinstance(x, float) and not math.isfinite(x):
            return None if math.isnan(x) else (math.inf if x > 0 else -math.inf)
        return x
    return [_plain(v) for v in array.tolist()]


@dataclasses.dataclass(frozen=True)
class Claim:
    """A measurable claim and whether it held in this run.

    Attributes:
      id: the experiment id, or the experiment id and a suffix (``cks.fig4.norm``).
      statement: the paper's sentence, made measurable.
      held: computed from the run.
      numbers: the measured values the decision was made on.
      settings: the settings it was measured under.
      note: optional context (e.g. which runs were excluded and why).
    """

    id: str
    statement: str
    held: bool
    numbers: Mapping[str, Any]
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        object.__setattr__(self, "held", bool(self.held))
        object.__setattr__(self, "numbers", _plain(dict(self.numbers)))
        object.__setattr__(self, "settings", _plain(dict(self.settings)))

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Result:
    """What an experiment returns.

    Attributes:
      figures: name -> matplotlib Figure (written as ``figures/<id>.<name>.png`` and ``.svg``).
      data: name -> the numbers behind a figure: a mapping of equal-length 1-d columns
        (written as CSV) or any JSON-ready structure (written as JSON).
      claims: the decided claims.
      notes: lines for the report (settings chosen, runs excluded, caveats).
    """

    figures: dict = dataclasses.field(default_factory=dict)
    data: dict = dataclasses.field(default_factory=dict)
    claims: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Context:
    """What the runner gives an experiment: whether to show progress bars, the mode."""

    full: bool = False
    progress: bool = True

    def track(self, items: Iterable, desc: str) -> Iterable:
        """``items`` behind a progress bar (tqdm) when this run shows progress, else as they are."""
        if not self.progress:
            return items
        from tqdm.auto import tqdm

        return tqdm(list(items), desc=desc, leave=False)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One figure or table of a paper, made runnable.

    ``claims`` maps each claim id this experiment decides to its statement.
    """

    id: str
    paper: str
    title: str
    quick: Mapping[str, Any]
    full: Mapping[str, Any]
    claims: Mapping[str, str]
    run: Callable[[Mapping[str, Any], Context], Result]

    def settings(self, full: bool) -> dict:
        return dict(self.full if full else self.quick)


REGISTRY: dict[str, Experiment] = {}


def experiment(*, id: str, paper: str, title: str, quick: Mapping[str, Any],
               full: Mapping[str, Any], claims: Mapping[str, str]):
    """Decorator registering ``run(settings, context) -> Result`` as an experiment."""

    def register(run: Callable[[Mapping[str, Any], Context], Result]) -> Experiment:
        if id in REGISTRY:
            raise ValueError(f"experiment id {id!r} registered twice")
        for claim_id in claims:
            if claim_id != id and not claim_id.startswith(id + "."):
                raise ValueError(f"claim id {claim_id!r} must be {id!r} or start with {id + '.'!r}")
        exp = Experiment(id=id, paper=paper, title=title, quick=dict(quick), full=dict(full),
                         claims=dict(claims), run=run)
        REGISTRY[id] = exp
        return exp

    return register


def make_claim(experiment_: Experiment, claim_id: str, held: bool, numbers: Mapping[str, Any],
               settings: Optional[Mapping[str, Any]] = None, note: str = "") -> Claim:
    """A :class:`Claim` whose statement is the one the experiment declared for ``claim_id``."""
    if claim_id not in experiment_.claims:
        raise KeyError(f"{experiment_.id} does not declare claim {claim_id!r}")
    return Claim(claim_id, experiment_.claims[claim_id], held, numbers, settings or {}, note)


def check_result(experiment_: Experiment, result: Result) -> None:
    """Every declared claim decided exactly once, and nothing undeclared."""
    decided = [c.id for c in result.claims]
    missing = sorted(set(experiment_.claims) - set(decided))
    extra = sorted(set(decided) - set(experiment_.claims))
    repeated = sorted({c for c in decided if decided.count(c) > 1})
    if missing or extra or repeated:
        raise RuntimeError(
            f"{experiment_.id}: claims not decided {missing}, undeclared {extra}, repeated {repeated}"
        )


def select(ids: Optional[Sequence[str]]) -> list[Experiment]:
    """The experiments named by ``ids`` (exact ids or prefixes such as ``cks`` or ``lwl.``)."""
    experiments = list(REGISTRY.values())
    if not ids:
        return experiments
    chosen = []
    for wanted in ids:
        matches = [e for e in experiments
                   if e.id == wanted or e.id.startswith(wanted.rstrip(".") + ".")]
        if not matches:
            known = ", ".join(REGISTRY)
            raise KeyError(f"no experiment {wanted!r}; known: {known}")
        chosen.extend(m for m in matches if m not in chosen)
    return chosen
