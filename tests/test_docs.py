"""Every docstring example of the public modules runs and prints what it shows."""

import doctest
import importlib

import pytest

MODULES = ["stn_numba.functional", "stn_numba.layers"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
