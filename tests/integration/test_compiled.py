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


def small_model(tag: float = 0.0, scale_name: str = "scale"):
    """pm.Data of rank 0, 1 and 2 and an integer array, so every extraction path runs;
    ``tag`` makes a graph that no earlier run has cached."""
    with pm.Model() as model:
        scale = pm.Data(scale_name, 2.0)
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


def test_a_second_process_loads_the_callbacks_and_graphs_from_disk(tmp_path):
    script = textwrap.dedent("""
        import json, sys, numpy as np
        sys.path.insert(0, sys.argv[1])
        from test_compiled import small_model, callback_logp
        from bayes.compiled import GRAPH_STATS, compile_model, loaded_from_cache
        tag = float(sys.argv[2])
        compiled = compile_model(small_model(tag), key=("test_compiled", tag))
        logp, grad = callback_logp(compiled, np.array([0.2, 0.1]))
        print(json.dumps({"cached": loaded_from_cache(compiled), "graphs": GRAPH_STATS, "logp": logp}))
    """)
    here, tag = os.path.dirname(__file__), str(np.random.default_rng().uniform(1, 2))   # a fresh graph
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}   # empty caches, removed afterwards
    runs = [json.loads(subprocess.run([sys.executable, "-c", script, here, tag], check=True, env=env,
                                      capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    assert [r["cached"] for r in runs] == [False, True]
    assert [r["graphs"] for r in runs] == [{"loaded": 0, "rewritten": 1}, {"loaded": 1, "rewritten": 0}]
    assert runs[0]["logp"] == runs[1]["logp"]


@pytest.fixture
def graph_store(tmp_path, monkeypatch):
    from bayes import compiled

    monkeypatch.setattr(compiled, "graph_dir", lambda: tmp_path)
    return tmp_path


def expand(compiled, x):
    """The stored variables nutpie computes from an unconstrained point."""
    dbl = ctypes.POINTER(ctypes.c_double)
    x = np.ascontiguousarray(x, float)
    out = np.zeros(compiled.n_expanded)
    code = compiled.compiled_expand_func.ctypes(compiled.n_dim, compiled.n_expanded, x.ctypes.data_as(dbl),
                                                out.ctypes.data_as(dbl), compiled.user_data.ctypes.data)
    assert code == 0
    return out


def test_stored_graphs_give_the_same_model(graph_store):
    from bayes.compiled import GRAPH_STATS

    before = dict(GRAPH_STATS)
    first = compile_model(small_model(0.5), key=("same", 1))
    assert len(list(graph_store.glob("*.pkl"))) == 1
    second = compile_model(small_model(0.5), key=("same", 1))
    assert GRAPH_STATS["rewritten"] - before["rewritten"] == 1 and GRAPH_STATS["loaded"] - before["loaded"] == 1
    # from the entry's record alone: callbacks straight from numba's cache, no PyTensor function
    assert first.logp_func is not None and second.logp_func is None and second.expand_func is None
    assert loaded_from_cache(second)
    assert second.shape_info[0] == first.shape_info[0] and second.n_expanded == first.n_expanded
    for x in np.random.default_rng(2).normal(size=(3, 2)):
        assert callback_logp(second, x)[0] == callback_logp(first, x)[0]
        np.testing.assert_array_equal(callback_logp(second, x)[1], callback_logp(first, x)[1])
        np.testing.assert_array_equal(expand(second, x), expand(first, x))
    new = {"scale": 0.5, "obs": np.array([2.0, 2.5]), "counts": np.array([0, 7])}
    x = np.array([0.4, -0.3])
    logp, grad = callback_logp(second.with_data(**new), x)
    ref_logp, ref_grad = reference(small_model(0.5), x, **new)
    assert logp == pytest.approx(ref_logp, rel=1e-10)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9)
    point = second.initial_point_func(1)     # the initial point function is rebuilt, not stored
    assert point.shape == (2,) and np.isfinite(point).all()


def test_a_record_the_model_does_not_fit_falls_back_to_the_stored_functions(graph_store):
    """The record names the shared data; a model (same key) without one of those
    names cannot use it, and gets the stored PyTensor functions instead."""
    from bayes.compiled import GRAPH_STATS

    first = compile_model(small_model(0.75), key=("renamed", 1))
    before = dict(GRAPH_STATS)
    second = compile_model(small_model(0.75, scale_name="scale_renamed"), key=("renamed", 1))
    assert GRAPH_STATS["loaded"] - before["loaded"] == 1 and GRAPH_STATS["rewritten"] == before["rewritten"]
    assert second.logp_func is not None          # unpickled, not built from the record
    for x in np.random.default_rng(4).normal(size=(3, 2)):
        assert callback_logp(second, x)[0] == callback_logp(first, x)[0]


def test_an_unreadable_store_entry_is_compiled_again_and_replaced(graph_store, caplog):
    from bayes.compiled import GRAPH_STATS

    compile_model(small_model(), key=("broken", 1))
    (entry,) = graph_store.glob("*.pkl")
    entry.write_bytes(b"not a pickle")
    (graph_store / "0000000000000000-other-version.pkl").write_bytes(b"old")
    before = dict(GRAPH_STATS)
    with caplog.at_level("WARNING", logger="bayes.compiled"):
        compiled = compile_model(small_model(), key=("broken", 1))
    assert "unreadable" in caplog.text and entry.name in caplog.text
    assert GRAPH_STATS["rewritten"] - before["rewritten"] == 1
    assert [p.name for p in graph_store.glob("*.pkl")] == [entry.name]   # replaced; other versions removed
    x = np.array([0.4, -0.3])
    assert callback_logp(compiled, x)[0] == pytest.approx(reference(small_model(), x)[0], rel=1e-10)
    assert compile_model(small_model(), key=("broken", 1)) is not None
    assert GRAPH_STATS["loaded"] - before["loaded"] == 1


def test_sampling_through_the_cached_model_is_seeded():
    import nutpie

    compiled = compile_model(small_model())
    a, b = (nutpie.sample(compiled, draws=50, tune=50, chains=2, cores=1, seed=3, progress_bar=False)
            for _ in range(2))
    np.testing.assert_array_equal(a.posterior["mu"].values, b.posterior["mu"].values)
    np.testing.assert_allclose(a.posterior["twice"].values, 2 * a.posterior["mu"].values)


def test_falls_back_to_nutpie_when_its_internals_move(monkeypatch, caplog):
    from bayes import compiled

    def moved(model, key=None):
        raise AttributeError("module 'nutpie.compile_pymc' has no attribute '_make_functions'")

    monkeypatch.setattr(compiled, "_compile_cached", moved)
    with caplog.at_level("WARNING", logger="bayes.compiled"):
        fallback = compile_model(small_model())
    assert "using nutpie.compile_pymc_model" in caplog.text and "_make_functions" in caplog.text
    x = np.array([0.4, -0.3])
    assert callback_logp(fallback, x)[0] == pytest.approx(reference(small_model(), x)[0], rel=1e-10)


def test_batch_log_densities_and_expanded_values_match_the_pytensor_functions():
    from bayes.compiled import expanded_values, log_densities

    model = small_model(tag=0.5)
    compiled = compile_model(model)
    points = np.random.default_rng(3).normal(size=(25, 2))
    points[4] = [0.0, 800.0]      # sd = exp(800) overflows: the density is not finite there
    got = log_densities(compiled, points)
    want = np.array([float(compiled.logp_func(p)[0]) for p in points])
    np.testing.assert_array_equal(got[np.arange(25) != 4], want[np.arange(25) != 4])
    assert not np.isfinite(got[4])
    grads = np.empty((3, 2))
    log_densities(compiled, points[:3], gradients=grads)
    np.testing.assert_array_equal(grads, np.stack([compiled.logp_func(p)[1] for p in points[:3]]))
    expanded = expanded_values(compiled, points[:6])
    assert expanded.shape == (6, compiled.n_expanded)
    np.testing.assert_array_equal(expanded, np.stack([compiled.expand_func(p)[0] for p in points[:6]]))
    # each with_data copy evaluates its own data
    swapped = compiled.with_data(scale=0.5, obs=np.array([2.0, 2.5]))
    ref_logp, _ = reference(model, points[0], scale=0.5, obs=np.array([2.0, 2.5]))
    assert log_densities(swapped, points[:1])[0] == pytest.approx(ref_logp, rel=1e-10)
    assert log_densities(compiled, points[:1])[0] == got[0]
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        log_densities(compiled, points[:, :1])
    with pytest.raises(ValueError, match="gradients must be"):
        log_densities(compiled, points[:3], gradients=np.empty((2, 2)))


def test_models_compile_without_fast_math_whatever_the_user_configured(monkeypatch):
    import pytensor

    from bayes import compiled

    seen = []
    monkeypatch.setattr(compiled, "_compile_cached",
                        lambda model, key: seen.append(pytensor.config.numba__fastmath) or "compiled")
    with pytensor.config.change_flags(numba__fastmath=True):
        assert compile_model(small_model()) == "compiled"
        assert pytensor.config.numba__fastmath is True        # restored afterwards
    assert seen == [compiled.FASTMATH] == [False]
