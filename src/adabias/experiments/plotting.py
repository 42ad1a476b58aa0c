"""Being retired: use :mod:`adabias.plot`."""

from adabias.plot import panels  # noqa: F401
