"""bayes: Bayesian synergy analysis of preclinical drug-combination summary tables."""

from bayes._version import __version__

__all__ = ["__version__"]
