"""The examples' cores, short: registration converges; the STN digits model learns.

examples/ is not a package: the tests import its modules from that folder.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "examples"))

import register as R

A = R.affine_matrix(20.0, 1.1, (0.08, -0.06))  # 20° + 10 % scale + shift, as in README


def test_register_affine_converges():
    fixed, moving = R.make_pair(48, A)
    start = R.residual(moving, fixed, np.eye(2, 3))
    theta, history = R.register(
        fixed, moving, iterations=40, sigmas=(2.0, 1.0, 0.0), lr=0.03, show_progress=False
    )
    truth = np.linalg.inv(np.vstack([A, [0, 0, 1]]))[:2]
    assert start > 0.1  # the images really differ
    assert R.residual(moving, fixed, theta) < 0.01  # < 1 % of the intensity range
    np.testing.assert_allclose(theta, truth, atol=5e-3)
    assert len(history) == 120 and history[-1] < history[0]


def test_register_projective_converges():
    P = np.vstack([A, [0.12, -0.08, 1.0]])
    fixed, moving = R.make_pair(48, P)
    theta, _ = R.register(
        fixed, moving, iterations=40, sigmas=(2.0, 1.0, 0.0), lr=0.03, show_progress=False
    )
    affine_only = R.residual(moving, fixed, theta)
    theta, _ = R.register(
        fixed, moving, theta, "perspective", (1.0, 0.0), 40, lr=0.02, show_progress=False
    )
    assert theta.shape == (3, 3) and theta[2, 2] == 1.0  # H's scale is held fixed
    assert R.residual(moving, fixed, theta) < min(0.01, affine_only)
    np.testing.assert_allclose(theta, np.linalg.inv(P), atol=0.05)


def test_register_figure_and_errors(tmp_path):
    f = np.linspace(0, 1, 64).reshape(8, 8)
    path = R._figure([("X", f, f[::-1], f)], str(tmp_path / "r.png"))
    with open(path, "rb") as f_:
        assert f_.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="transform must be"):
        R.register(f, f, transform="tps")


def test_digits_stn_learns():
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    import train_stn_digits as D

    data = D.load_data(seed=0, copies=1, n_test=200)
    data = (data[0][:800], data[1][:800], data[2], data[3])
    model, hist = D.train(data, use_stn=True, epochs=2, batch=32, lr=1e-2, verbose=False)
    acc, loss = hist["test_acc"], hist["train_loss"]  # acc[0]: before training
    assert len(acc) == 3 and len(loss) == 2
    assert acc[2] > acc[1] + 0.05 and acc[2] > acc[0] + 0.1  # improves over its first epoch
    assert loss[1] < loss[0]
    # the localisation net learned: θ moved away from its identity start
    theta = model.theta(data[2][:50])
    assert np.abs(theta - np.eye(2, 3)).max() > 1e-3
    x = data[2][:4]
    logits, view = model.forward(x)
    assert logits.shape == (4, 10) and view.shape == (4, 1, D.VIEW, D.VIEW)
    assert view.dtype == np.float32


def test_examples_use_only_the_public_api():
    """examples/ imports nothing private of the package (names starting with "_")."""
    folder = os.path.join(os.path.dirname(__file__), os.pardir, "examples")
    private = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                for no, line in enumerate(f, 1):
                    if "stn_numba._" in line or "from stn_numba import _" in line:
                        private.append(f"{name}:{no}: {line.strip()}")
    assert not private, "\n".join(private)


def test_figures_helpers():
    import stn_numba.figures as fig

    card = fig.load_test_card()
    assert card.shape == (128, 128) and card.dtype == np.uint8
    img = fig.to_uint8(np.zeros((9, 30)))
    fig.draw_text(img, "STN", 1, 1, 255)
    assert img[:8, :17].max() == 255 and img[:, 18:].max() == 0
