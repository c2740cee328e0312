"""Slow tier (opt in with --run-slow): a model compiled in this process and the same
model loaded from numba's disk cache give the same log densities to the bit, so a
fit's draws do not depend on whether its run was the first after an install
(bayes.compiled.FASTMATH).  About a minute: numba compiles the model from scratch."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import hashlib, json, numpy as np
    from bayes.bench import seed_spec
    from bayes.compiled import loaded_from_cache, log_densities
    from bayes.priors import load_prior_set
    from bayes.sampling import ModelCache, compiled_with_data
    compiled, _ = compiled_with_data(seed_spec(), load_prior_set("default"), ModelCache())
    points = np.random.default_rng(0).normal(size=(500, compiled.n_dim)) * 0.5
    grad = np.zeros_like(points)
    logp = log_densities(compiled, points, grad)
    print(json.dumps({"cached": loaded_from_cache(compiled),
                      "digest": hashlib.sha256(logp.tobytes() + grad.tobytes()).hexdigest()}))
""")


def test_a_fresh_compilation_and_the_disk_cache_agree_to_the_bit(tmp_path):
    # With numba's fast-math flags the two runs below differed in the 13th digit at most points.
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}   # empty caches, removed afterwards
    runs = [json.loads(subprocess.run([sys.executable, "-c", SCRIPT], check=True, env=env, capture_output=True,
                                      text=True).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert [r["cached"] for r in runs] == [False, True]
    assert runs[0]["digest"] == runs[1]["digest"]
