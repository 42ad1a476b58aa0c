"""adabias: the implicit bias of adaptive optimizers.

Optimizers with the papers' exact conventions (``adabias.optim``), curvature and
gradient-norm measures (``adabias.measures``), a compiled trajectory engine
(``adabias.run``, ``adabias.sweep``), continuous-time approximations
(``adabias.flows``), the papers' problems (``adabias.problems``) and the
reproduction pipeline (``adabias.experiments``, ``adabias reproduce``).
"""

from adabias import flows, measures, optim, problems
from adabias.engine import CheckpointError, CheckpointMismatch, SweepResult, Trajectory, run, sweep

__version__ = "0.1.0"

__all__ = ["flows", "measures", "optim", "problems", "run", "sweep", "SweepResult", "Trajectory",
           "CheckpointError", "CheckpointMismatch", "__version__"]
