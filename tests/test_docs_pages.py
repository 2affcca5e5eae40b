"""The examples of the site's pages (docs/*.rst) run and print what they show.

The porting guides compare against the library they port from: each is skipped, with
the reason, when that library is not installed (CI installs torch and OpenCV). The
kornia guide shows kornia's calls without running them and checks stn_numba's against
results worked out by hand, so it needs nothing beyond the package.
"""

import doctest
import importlib.util
import pathlib

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"

# page -> modules its examples import (beyond the package's dependencies)
PAGES = {
    "getting_started.rst": (),
    "porting/pytorch.rst": ("torch",),
    "porting/opencv.rst": ("cv2",),
    "porting/scipy.rst": (),
    "porting/kornia.rst": (),
}


def _params():
    for page, needs in PAGES.items():
        marks = [pytest.mark.torch] if "torch" in needs else []
        yield pytest.param(page, needs, id=page, marks=marks)


@pytest.mark.parametrize(("page", "needs"), list(_params()))
def test_page_examples(page, needs):
    for module in needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"docs/{page} compares against {module}, which is not installed")
    result = doctest.testfile(
        str(DOCS / page),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE,
        raise_on_error=False,
    )
    assert result.attempted > 0, f"docs/{page} has no examples"
    assert result.failed == 0


def test_every_page_with_examples_is_tested():
    """A page that gains ``>>>`` examples is added to PAGES, so they run."""
    with_examples = {
        str(p.relative_to(DOCS))
        for p in DOCS.rglob("*.rst")
        if "_build" not in p.parts and ">>> " in p.read_text(encoding="utf-8")
    }
    assert with_examples == set(PAGES)
