"""Test tiers: unit (no sampling), integration (tiny seeded fits, on by
default) and slow (opt in with --run-slow)."""

from __future__ import annotations

import pytest

from bayes.sampling import DEFAULT_CACHE, ModelCache, SamplerSettings


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run the slow tier")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow tier: pass --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache() -> ModelCache:
    """The library's process-wide cache, so API and CLI tests share compilations:
    each model structure compiles once per test session."""
    return DEFAULT_CACHE


@pytest.fixture(scope="session")
def quick() -> SamplerSettings:
    """Small but honest sampler settings for integration tests (seeded)."""
    return SamplerSettings(draws=1000, tune=1000, chains=4, cores=2, seed=7)
