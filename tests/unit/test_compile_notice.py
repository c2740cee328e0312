"""The slow-compilation notice: said once when a compilation runs long, never otherwise."""

import time

import pytest

from bayes import compiled


@pytest.fixture
def slow_compile(monkeypatch):
    """compile_model with a stand-in compilation that takes 0.3 s."""
    monkeypatch.setattr(compiled, "_compile_cached", lambda model, key: time.sleep(0.3) or "done")


def test_a_long_compilation_says_so_once(slow_compile, monkeypatch):
    monkeypatch.setattr(compiled, "SLOW_COMPILE_SECONDS", 0.05)
    lines = []
    with compiled.compile_notices(lines.append):
        assert compiled.compile_model(object(), label="joint model") == "done"
    time.sleep(0.1)
    assert len(lines) == 1
    assert "compiling the joint model for this machine" in lines[0]


def test_a_quick_compilation_and_no_listener_say_nothing(slow_compile, monkeypatch):
    monkeypatch.setattr(compiled, "SLOW_COMPILE_SECONDS", 1.0)
    lines = []
    with compiled.compile_notices(lines.append):
        compiled.compile_model(object())
    monkeypatch.setattr(compiled, "SLOW_COMPILE_SECONDS", 0.05)
    compiled.compile_model(object())            # no compile_notices: nobody to tell
    with compiled.compile_notices(None):        # --quiet
        compiled.compile_model(object())
    time.sleep(1.2)                             # a cancelled timer must stay silent
    assert lines == []
