"""Cached nutpie compilation (bayes.compiled): same numbers as the model, data swaps, and
a second process that loads the callbacks from disk instead of compiling them."""

import ctypes
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pymc as pm
import pytest

from bayes.compiled import compile_model, loaded_from_cache


def small_model(tag: float = 0.0):
    """pm.Data of rank 0, 1 and 2 and an integer array, so every extraction path runs;
    ``tag`` makes a graph that no earlier run has cached."""
    with pm.Model() as model:
        scale = pm.Data("scale", 2.0)
        obs = pm.Data("obs", np.array([0.3, -0.2, 1.1]))
        weights = pm.Data("weights", np.array([[1.0, 0.5, 0.25], [0.1, 0.2, 0.3]]))
        counts = pm.Data("counts", np.array([3, 1], dtype="int64"))
        mu = pm.Normal("mu", 0.0, scale)
        sd = pm.HalfNormal("sd", 1.0)
        pm.Normal("y", mu, sd, observed=obs)
        pm.Potential("extra", -0.5 * pm.math.sum((weights.sum(axis=1) * counts - mu) ** 2))
        pm.Deterministic("twice", 2 * mu + tag)
    return model


def callback_logp(compiled, x):
    """Call the compiled C log-density callback as nutpie does."""
    dbl = ctypes.POINTER(ctypes.c_double)
    x = np.ascontiguousarray(x, float)
    grad, logp = np.zeros(compiled.n_dim), np.zeros(())
    code = compiled.compiled_logp_func.ctypes(compiled.n_dim, x.ctypes.data_as(dbl), grad.ctypes.data_as(dbl),
                                              logp.ctypes.data_as(dbl), compiled.user_data.ctypes.data)
    assert code == 0
    return float(logp), grad


def reference(model, x, **data):
    """logp and gradient straight from the PyMC model, with ``data`` set."""
    with model:
        if data:
            pm.set_data(data)
    point = {"mu": x[0], "sd_log__": x[1]}
    logp = float(model.compile_logp()(point))
    grad = model.compile_dlogp()(point)
    return logp, grad


def test_callbacks_match_the_model_and_follow_data_swaps():
    model = small_model()
    compiled = compile_model(model)
    assert [name for name in compiled.shape_info[0]][:2] == ["mu", "sd_log__"]
    rng = np.random.default_rng(1)
    for x in rng.normal(size=(3, 2)):
        logp, grad = callback_logp(compiled, x)
        ref_logp, ref_grad = reference(model, x)
        assert logp == pytest.approx(ref_logp, rel=1e-10)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-9)
    new = {"scale": 0.5, "obs": np.array([2.0, 2.5]), "counts": np.array([0, 7])}
    swapped = compiled.with_data(**new)
    x = np.array([0.4, -0.3])
    logp, grad = callback_logp(swapped, x)
    ref_logp, ref_grad = reference(model, x, **new)
    assert logp == pytest.approx(ref_logp, rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9)
    # the original keeps its own data
    assert callback_logp(compiled, x)[0] != pytest.approx(logp)


def test_a_second_process_loads_the_callbacks_from_disk():
    script = textwrap.dedent("""
        import json, sys, numpy as np
        sys.path.insert(0, sys.argv[1])
        from test_compiled import small_model, callback_logp
        from bayes.compiled import compile_model, loaded_from_cache
        compiled = compile_model(small_model(float(sys.argv[2])))
        logp, grad = callback_logp(compiled, np.array([0.2, 0.1]))
        print(json.dumps({"cached": loaded_from_cache(compiled), "logp": logp}))
    """)
    here, tag = os.path.dirname(__file__), str(np.random.default_rng().uniform(1, 2))   # a fresh graph
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, here, tag], check=True,
                                      capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    assert [r["cached"] for r in runs] == [False, True]
    assert runs[0]["logp"] == runs[1]["logp"]


def test_sampling_through_the_cached_model_is_seeded():
    import nutpie

    compiled = compile_model(small_model())
    a, b = (nutpie.sample(compiled, draws=50, tune=50, chains=2, cores=1, seed=3, progress_bar=False)
            for _ in range(2))
    np.testing.assert_array_equal(a.posterior["mu"].values, b.posterior["mu"].values)
    np.testing.assert_allclose(a.posterior["twice"].values, 2 * a.posterior["mu"].values)


def test_falls_back_to_nutpie_when_its_internals_move(monkeypatch, caplog):
    from bayes import compiled

    def moved(model):
        raise AttributeError("module 'nutpie.compile_pymc' has no attribute '_make_functions'")

    monkeypatch.setattr(compiled, "_compile_cached", moved)
    with caplog.at_level("WARNING", logger="bayes.compiled"):
        fallback = compile_model(small_model())
    assert "using nutpie.compile_pymc_model" in caplog.text and "_make_functions" in caplog.text
    x = np.array([0.4, -0.3])
    assert callback_logp(fallback, x)[0] == pytest.approx(reference(small_model(), x)[0], rel=1e-10)
