"""The trajectory engine (layer 4): training as one compiled program.

:func:`run` trains one model; :func:`sweep` trains a grid of hyperparameters × seeds as
one ``vmap``-ed program. Both go through the same code: ``lax.scan`` over saved points,
an inner ``lax.scan`` over the ``save_every`` steps between them.

Files, by job:

- ``loop.py``: the traced program: one step, a block of ``save_every`` steps (run
  unchecked, re-run step by step when a value was non-finite), the scan over blocks;
  :class:`Trajectory`, the records.
- ``driver.py``: :func:`run`, and the driver it shares with :func:`sweep`: checks the
  arguments and builds the program once per call, compiles it (jit caches keyed by the
  program), runs it in one call or in chunks (progress bar, checkpoint), joins the records.
- ``sweeps.py``: :func:`sweep` and :class:`SweepResult`: grid points × seeds, their keys and
  starts, sharding of the members over devices and processes.
- ``checkpoint.py``: the resumable ``.npz`` file of a chunked run, keyed by a fingerprint
  of everything that determines the result; :class:`CheckpointError`,
  :class:`CheckpointMismatch`.
- ``checks.py``: argument checks, before anything is compiled.
- ``records.py``: records out: the tables of ``to_csv`` and ``to_dataframe``, the rows that
  ``on_record`` streams, and two sinks, :class:`CSVStream` and :class:`TensorBoardStream`.
- ``stream.py``: the host side of ``on_record``: the callback target compiled into a
  streaming run, and the registry that finds the sink of each run.
- ``progress.py``: progress bars that nest (the engine's, the experiments').
"""

from adabias.engine.checkpoint import CheckpointError, CheckpointMismatch
from adabias.engine.driver import run
from adabias.engine.loop import Trajectory
from adabias.engine.records import CSVStream, TensorBoardStream
from adabias.engine.sweeps import SweepResult, sweep

__all__ = ["run", "sweep", "SweepResult", "Trajectory", "CheckpointError", "CheckpointMismatch",
           "CSVStream", "TensorBoardStream"]
