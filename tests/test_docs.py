"""The docs: the public modules have examples (pytest runs them, --doctest-modules),
the README and the conventions page agree with the code, nothing outside the repo is
cited."""

import doctest
import importlib
import pathlib
import re

import pytest

MODULES = ["stn_numba.functional", "stn_numba.layers", "stn_numba.ndimage"]


@pytest.mark.parametrize("name", MODULES)
def test_public_modules_have_examples(name):
    # pytest runs every docstring example of the package (--doctest-modules in
    # pyproject.toml); this checks that the public modules keep some
    module = importlib.import_module(name)
    found = doctest.DocTestFinder().find(module)
    assert sum(len(t.examples) for t in found) > 10, f"{name} has few or no examples"


ROOT = pathlib.Path(__file__).resolve().parent.parent
CONVENTIONS = ROOT / "docs" / "conventions.md"


def test_readme_links_the_conventions():
    assert "docs/conventions.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert CONVENTIONS.exists()


def test_no_citation_of_documents_outside_the_repo():
    """Code, tests and docs stand on their own: no design document, issue or work-stop
    of the team that is not in the repository is cited."""
    cited = re.compile(r"SPEC\.md|\.\./shared|§\s?\d|\bthe issue\b|\bissue \d|\bstop[- ]\d", re.I)
    hits = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if rel.parts[0].startswith(".") or path == pathlib.Path(__file__).resolve():
            continue
        if path.suffix not in {".py", ".md", ".rst", ".toml", ".sh", ".cfg", ".txt"}:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if cited.search(line):
                hits.append(f"{rel}:{no}: {line.strip()}")
    assert not hits, "\n".join(hits)


def _padding_diagrams():
    """(padding_mode, align_corners, left, right) from the table of docs/conventions.md
    ("Padding"): the pixels read beyond each edge of the row ``a b c d``."""
    rows = []
    for line in CONVENTIONS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(zeros|border|reflection)` \| `([^`]*)` \| `([^`]*)` \|", line)
        if not m:
            continue
        for ac, cell in ((False, m.group(2)), (True, m.group(3))):
            left, middle, right = (p.split() for p in cell.split("\\|"))
            assert middle == list("abcd")
            rows.append((m.group(1), ac, left, right))
    return rows


def test_padding_diagrams_match_the_code():
    """Each diagram of docs/conventions.md is what nearest sampling reads at the integer
    pixel coordinates beyond the edges."""
    import numpy as np

    import stn_numba as stn

    rows = _padding_diagrams()
    assert len(rows) == 6
    x = np.arange(1.0, 5.0).reshape(1, 1, 1, 4)
    names = dict(zip([0.0, 1.0, 2.0, 3.0, 4.0], "0abcd"))
    for padding, ac, left, right in rows:
        i = np.concatenate([np.arange(-len(left), 0), np.arange(4, 4 + len(right))]).astype(float)
        g = 2 * i / 3 - 1 if ac else (2 * i + 1) / 4 - 1
        grid = np.stack([g, np.zeros_like(g)], -1)[None, None]
        y = stn.grid_sample(x, grid, mode="nearest", padding_mode=padding, align_corners=ac)
        got = [names[v] for v in y[0, 0, 0]]
        assert got == left + right, (padding, ac)
