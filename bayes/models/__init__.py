"""Model builders.  Each returns a ``pymc.Model`` whose observed data are
``pm.Data`` containers, so a compiled model can be refitted with new numbers
of the same shape (see :mod:`bayes.sampling`)."""

from bayes.models.factorial import MODEL_NAMES, CellData, build_factorial, cell_data

__all__ = ["MODEL_NAMES", "CellData", "build_factorial", "cell_data"]
