"""Experiments, claims and the registry (DESIGN §4.2).

An :class:`Experiment` reproduces one figure, table or claim group of a paper. It has an
``id`` (e.g. ``"cks.fig1"``), one frozen settings dataclass per scale tier (:class:`Tiers`:
quick, medium, full), the claims it decides (declared up front, so ``adabias list`` can show
them) and four functions of (settings, ...):

    measure(settings, context) -> record      a typed record (NamedTuple) of arrays
    decide(settings, record)   -> Decision    a Verdict per declared claim, and report notes
    plot(settings, record)     -> {name: Figure}
    tables(settings, record)   -> {name: columns or JSON-ready data}

:meth:`Experiment.run` composes them into a :class:`Result`. A :class:`Claim` is a sentence
of the paper made measurable; ``held`` is computed from the run, every time, and ``numbers``
are the values it was decided on.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Generic, Iterable, Mapping, NamedTuple, Optional, Sequence, TypeVar

import numpy as np


def _plain(value: Any) -> Any:
    """Numbers and arrays as JSON-ready Python values (floats, ints, lists, None for NaN)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(settings_dict(value))
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


#: The kinds of claim (DESIGN §4.3): what a paper reports, tested in the closest setting
#: this machine runs (the scale gap stated), and what a theorem predicts, tested where its
#: assumptions hold.
CLAIM_KINDS = ("paper", "theory")


class ClaimSpec(NamedTuple):
    """A claim as an experiment declares it, before any run.

    ``statement`` is the sentence made measurable, ``kind`` one of :data:`CLAIM_KINDS`, and
    ``test`` the decision rule fixed in the module (statistic, seeds, threshold), e.g.
    ``"sign test over 8 paired seeds, one-sided p < 0.01"``.
    """

    statement: str
    kind: str
    test: str


def check_claim_spec(claim_id: str, spec: ClaimSpec) -> None:
    if not isinstance(spec, ClaimSpec):
        raise TypeError(f"claim {claim_id!r} must be declared as a ClaimSpec, got "
                        f"{type(spec).__name__}")
    if spec.kind not in CLAIM_KINDS:
        raise ValueError(f"claim {claim_id!r}: kind must be one of {CLAIM_KINDS}, got "
                         f"{spec.kind!r}")
    for field in ("statement", "test"):
        if not isinstance(getattr(spec, field), str) or not getattr(spec, field).strip():
            raise ValueError(f"claim {claim_id!r}: {field} must be a non-empty sentence")


@dataclasses.dataclass(frozen=True)
class Claim:
    """A measurable claim and whether it held in this run.

    Attributes:
      id: the experiment id, or the experiment id and a suffix (``cks.fig4.norm``).
      statement: the paper's sentence, made measurable.
      held: computed from the run.
      numbers: the measured values the decision was made on.
      settings: the settings it was measured under.
      note: context; why, when it does not hold (``"undecided: …"`` when its test could not
        decide).
      kind: ``"paper"`` or ``"theory"`` (:data:`CLAIM_KINDS`).
      test: the decision rule, fixed before the run.
    """

    id: str
    statement: str
    held: bool
    numbers: Mapping[str, Any]
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""
    kind: str = "paper"
    test: str = ""

    def __post_init__(self):
        object.__setattr__(self, "held", bool(self.held))
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"claim {self.id!r}: kind must be one of {CLAIM_KINDS}, got "
                             f"{self.kind!r}")
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


#: The scale tiers, smallest first (DESIGN §4.2): quick (offline, minutes on 2 CPU cores),
#: medium (hours at most on a CPU, real data), full (the papers' scale, for a GPU).
SCALES = ("quick", "medium", "full")


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    return scale


@dataclasses.dataclass(frozen=True)
class Context:
    """What the runner gives an experiment: the scale tier and whether to show progress."""

    scale: str = "quick"
    progress: bool = True

    def __post_init__(self):
        check_scale(self.scale)

    def track(self, items: Iterable, desc: str) -> Iterable:
        """``items`` behind a progress bar (tqdm) when this run shows progress, else as they are.

        The bar nests with the engine's: a run's bar inside the loop takes the line below."""
        if not self.progress:
            return items
        from adabias.engine.progress import track

        return track(items, desc=desc)


S = TypeVar("S")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Tiers(Generic[S]):
    """One settings instance per scale tier (DESIGN §4.2)."""

    quick: S
    medium: S
    full: S

    def at(self, scale: str) -> S:
        return getattr(self, check_scale(scale))


def settings_dict(settings: Any) -> dict:
    """A settings dataclass (or mapping) as a plain dict, for claims.json and the cache key."""
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    return dict(settings)


class Verdict(NamedTuple):
    """One declared claim decided: held or not, the numbers it was decided on, a note
    (required when it does not hold: why)."""

    claim_id: str
    held: bool
    numbers: Mapping[str, Any]
    note: str = ""


class Decision(NamedTuple):
    """What ``decide`` returns: a verdict per declared claim and lines for the report."""

    verdicts: Sequence[Verdict]
    notes: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class Experiment(Generic[S, R]):
    """One figure, table or claim group of a paper, made runnable: measure → decide → plot.

    ``claims`` maps each claim id this experiment decides to its :class:`ClaimSpec`.
    ``shares`` names an in-process memo it shares with others (e.g. the classifier sweeps of
    ``studies.classifiers``): ``reproduce`` with several worker processes runs experiments with
    the same non-empty ``shares`` in one process, in order, so the memo is reused.
    """

    id: str
    paper: str
    title: str
    tiers: Tiers[S]
    claims: Mapping[str, ClaimSpec]
    measure: Callable[[S, "Context"], R]
    decide: Callable[[S, R], Decision]
    plot: Callable[[S, R], Mapping[str, Any]]
    tables: Callable[[S, R], Mapping[str, Any]]
    shares: str = ""

    def __post_init__(self):
        for claim_id, spec in self.claims.items():
            check_claim_spec(claim_id, spec)
            if claim_id != self.id and not claim_id.startswith(self.id + "."):
                raise ValueError(f"claim id {claim_id!r} must be {self.id!r} or start with "
                                 f"{self.id + '.'!r}")

    def settings_at(self, scale: str) -> S:
        return self.tiers.at(scale)

    def run(self, settings: S, context: "Context") -> "Result":
        """measure → decide → plot → tables, as one :class:`Result`."""
        record = self.measure(settings, context)
        decision = self.decide(settings, record)
        plain = settings_dict(settings)
        claims = []
        for verdict in decision.verdicts:
            if verdict.claim_id not in self.claims:
                raise KeyError(f"{self.id} does not declare claim {verdict.claim_id!r}")
            spec = self.claims[verdict.claim_id]
            if not verdict.held and not verdict.note.strip():
                raise ValueError(f"{self.id}: claim {verdict.claim_id!r} did not hold and its "
                                 "verdict gives no reason (note)")
            claims.append(Claim(verdict.claim_id, spec.statement, verdict.held,
                                verdict.numbers, plain, verdict.note, spec.kind, spec.test))
        return Result(figures=dict(self.plot(settings, record)),
                      data=dict(self.tables(settings, record)), claims=claims,
                      notes=list(decision.notes))


REGISTRY: dict[str, Experiment] = {}


def register(experiment_: Experiment) -> Experiment:
    """Add an experiment to :data:`REGISTRY` (ids are unique)."""
    if experiment_.id in REGISTRY:
        raise ValueError(f"experiment id {experiment_.id!r} registered twice")
    REGISTRY[experiment_.id] = experiment_
    return experiment_


def check_result(experiment_: Experiment, result: Result) -> None:
    """Every declared claim decided exactly once, and nothing undeclared."""
    decided = [c.id for c in result.claims]
    missing = sorted(set(experiment_.claims) - set(decided))
    extra = sorted(set(decided) - set(experiment_.claims))
    repeated = sorted({c for c in decided if decided.count(c) > 1})
    problems = [f"{what} {ids}" for what, ids in (("claims not decided", missing),
                                                     ("undeclared claims", extra),
                                                     ("claims decided twice", repeated)) if ids]
    if problems:
        raise RuntimeError(f"{experiment_.id}: " + "; ".join(problems))


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
