"""Model builders.  Each returns a ``pymc.Model`` whose observed data are
``pm.Data`` containers, so a compiled model can be refitted with new numbers
of the same shape (see :mod:`bayes.sampling`)."""

from bayes.models.builder import MODEL_NAMES, ModelSpec, build_model
from bayes.models.cells import Cell, make_cell

__all__ = ["MODEL_NAMES", "ModelSpec", "build_model", "Cell", "make_cell"]
