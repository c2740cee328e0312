"""bayes: Bayesian synergy analysis of preclinical drug-combination summary tables.

The few calls a notebook needs::

    import bayes
    study = bayes.load_builtin()              # or bayes.read_study("my_study.csv")
    result = bayes.fit(study, n=10, seed=1)   # posterior per endpoint, synergy scores
    print(result)                             # the same table `bayes fit` prints
    result.synergy                            # pandas DataFrame
    result.cell(study_name, "tumor_volume")   # ArviZ DataTree of one endpoint
    result.save("out/")                       # posterior.nc, synergy.csv, ...
    bayes.load_result("out/")                 # read back without refitting

Attributes are imported lazily so that ``bayes --help`` does not pay for PyMC.
"""

from __future__ import annotations

import importlib

from bayes._version import __version__

_LAZY = {
    "read_study": "bayes.data", "load_builtin": "bayes.data", "builtin_names": "bayes.data",
    "Study": "bayes.data", "study_from_frame": "bayes.data", "consistency_checks": "bayes.data",
    "write_template": "bayes.data", "combine_studies": "bayes.data",
    "fit": "bayes.analysis",
    "FitResult": "bayes.results", "load_result": "bayes.results",
    "load_prior_set": "bayes.priors", "Prior": "bayes.priors", "PriorSet": "bayes.priors",
    "SamplerSettings": "bayes.sampling",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bayes' has no attribute {name!r}")
