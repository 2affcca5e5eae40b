"""A Spatial Transformer Network trained end to end in NumPy, on distorted digits.

The PyTorch STN tutorial's story without torch: scikit-learn's bundled 8×8 digits are
upscaled to 16×16 and randomly rotated (±45°), scaled (0.75–1.25×) and shifted inside a
32×32 canvas (the "distorted MNIST" setting of Jaderberg et al., 2015). A localisation
net (an MLP) regresses an affine θ from the canvas; :class:`stn_numba.SpatialTransformer`
samples a 16×16 view of the canvas through θ; a classifier (an MLP) reads that view. The
gradient of the classification loss flows back through the sampler to θ
(``SpatialTransformer.backward``) and on into the localisation net: everything is
trained together with Adam, the layers written out below in NumPy.

The baseline is the same classifier trained alone on the whole canvas resampled to 16×16
(the STN frozen at the identity). ``python examples/train_stn_digits.py`` prints the test
accuracy of both and writes ``stn_digits.png``: a batch of test inputs beside their
STN outputs (the tutorial's figure). :func:`train` is importable (the tests run it short).
"""

import argparse
import itertools
import os
import sys
import time

import numpy as np

from stn_numba import SpatialTransformer, warp_affine

# Figures in NumPy only (no imaging library): stn_numba.figures.
from stn_numba.figures import draw_text, to_uint8, write_png

CANVAS, VIEW = 32, 16
DTYPE = np.float32


# --------------------------------------------------------------------------- data


def load_data(seed=0, copies=3, n_test=500):
    """(x_train, y_train, x_test, y_test): distorted digits on a CANVAS² canvas, float32.

    Each training digit appears ``copies`` times with independent random distortions;
    the test digits (the last ``n_test`` of the shuffled set, never seen in training)
    once each.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "this example needs scikit-learn: pip install 'stn_numba[examples]'"
        ) from None
    rng = np.random.default_rng(seed)
    digits = load_digits()
    order = rng.permutation(len(digits.target))
    images = digits.images[order] / 16.0
    labels = digits.target[order]
    test = slice(len(labels) - n_test, None)
    train = slice(0, len(labels) - n_test)
    x_tr = distort(np.repeat(images[train], copies, axis=0), rng)
    y_tr = np.repeat(labels[train], copies)
    x_te = distort(images[test], rng)
    return x_tr, y_tr, x_te, labels[test]


def distort(images, rng):
    """(N, 8, 8) in [0, 1] → (N, 1, CANVAS, CANVAS): upscaled 2×, rotated, scaled, shifted."""
    n = len(images)
    canvas = np.zeros((n, 1, CANVAS, CANVAS), DTYPE)
    o = (CANVAS - VIEW) // 2
    canvas[:, 0, o : o + VIEW, o : o + VIEW] = np.kron(images, np.ones((2, 2)))
    angle = np.deg2rad(rng.uniform(-45, 45, n))
    scale = rng.uniform(0.75, 1.25, n)  # digit size factor
    shift = rng.uniform(-0.2, 0.2, (n, 2))
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    theta = np.stack([np.stack([c, -s, shift[:, 0]], 1), np.stack([s, c, shift[:, 1]], 1)], 1)
    # bilinear upscaling of the 8×8 pixels happens here too (the canvas is sampled)
    return warp_affine(canvas, theta.astype(DTYPE))


# --------------------------------------------------------------------------- layers


class Linear:
    """y = x @ W + b, with its Adam state."""

    def __init__(self, n_in, n_out, rng, zero=False):
        scale = 0.0 if zero else np.sqrt(2.0 / n_in)
        self.W = (scale * rng.standard_normal((n_in, n_out))).astype(DTYPE)
        self.b = np.zeros(n_out, DTYPE)
        self.state = [np.zeros_like(p) for p in (self.W, self.W, self.b, self.b)]

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, g):
        self.gW, self.gb = self.x.T @ g, g.sum(0)
        return g @ self.W.T

    def step(self, lr, t, b1=0.9, b2=0.999):
        for i, (p, g) in enumerate(((self.W, self.gW), (self.b, self.gb))):
            m, v = self.state[2 * i], self.state[2 * i + 1]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)


class ReLU:
    def forward(self, x):
        self.mask = x > 0
        return x * self.mask

    def backward(self, g):
        return g * self.mask


class MLP:
    """Linear → ReLU → ... → Linear."""

    def __init__(self, sizes, rng, zero_last=False):
        self.layers = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            last = i == len(sizes) - 2
            self.layers.append(Linear(a, b, rng, zero=zero_last and last))
            if not last:
                self.layers.append(ReLU())

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, g):
        for layer in reversed(self.layers):
            g = layer.backward(g)
        return g

    def step(self, lr, t):
        for layer in self.layers:
            if isinstance(layer, Linear):
                layer.step(lr, t)


def softmax_cross_entropy(logits, y):
    """(mean loss, dloss/dlogits)."""
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    n = len(y)
    loss = -np.log(p[np.arange(n), y] + 1e-12).mean()
    p[np.arange(n), y] -= 1.0
    return float(loss), p / n


# --------------------------------------------------------------------------- the model


class Model:
    """Localisation net → SpatialTransformer → classifier (``use_stn=False``: θ = identity)."""

    def __init__(self, rng, use_stn=True, hidden=128, loc_hidden=32):
        self.use_stn = use_stn
        self.st = SpatialTransformer("affine", size=(VIEW, VIEW))
        # θ starts at the identity: last layer zero, bias [1, 0, 0, 0, 1, 0] (the tutorial's)
        self.loc = MLP([CANVAS * CANVAS, loc_hidden, 6], rng, zero_last=True)
        self.loc.layers[-1].b[:] = np.eye(2, 3, dtype=DTYPE).ravel()
        self.cls = MLP([VIEW * VIEW, hidden, 10], rng)

    def theta(self, x):
        n = len(x)
        if not self.use_stn:
            return np.broadcast_to(np.eye(2, 3, dtype=DTYPE), (n, 2, 3)).copy()
        return self.loc.forward(x.reshape(n, -1)).reshape(n, 2, 3)

    def forward(self, x):
        """(logits, STN output) for a batch (N, 1, CANVAS, CANVAS)."""
        view = self.st.forward(x, self.theta(x))
        return self.cls.forward(view.reshape(len(x), -1)), view

    def train_step(self, x, y, lr, t):
        logits, _ = self.forward(x)
        loss, g = softmax_cross_entropy(logits, y)
        g_view = self.cls.backward(g).reshape(len(x), 1, VIEW, VIEW)
        self.cls.step(lr, t)
        if self.use_stn:
            _, g_theta = self.st.backward(g_view, input_grad=False)  # x is the raw input
            self.loc.backward(g_theta.reshape(len(x), 6))
            self.loc.step(lr * self.loc_lr_factor, t)
        return loss

    loc_lr_factor = 0.1  # the localisation net learns more slowly (a stabler θ)

    def accuracy(self, x, y, batch=500):
        hits = 0
        for i in range(0, len(x), batch):
            logits, _ = self.forward(x[i : i + batch])
            hits += int((logits.argmax(1) == y[i : i + batch]).sum())
        return hits / len(x)


def _progress(total, desc, show):
    if not show:
        return None
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, ncols=88, leave=False)
    except ImportError:
        return None


def train(data, use_stn=True, epochs=20, batch=64, lr=2e-3, seed=0, verbose=True):
    """Train a :class:`Model` on ``data`` = (x_train, y_train, x_test, y_test).

    Returns (model, history): history is a dict of lists, ``test_acc`` (before training,
    then after every epoch) and ``train_loss`` (mean over every epoch).
    """
    x_tr, y_tr, x_te, y_te = data
    rng = np.random.default_rng(seed)
    model = Model(rng, use_stn)
    history = {"test_acc": [model.accuracy(x_te, y_te)], "train_loss": []}
    name = "with STN" if use_stn else "   no STN"
    t = 0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_tr))
        bar = _progress(len(order) // batch, f"{name} epoch {epoch}", verbose)
        losses = []
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            t += 1
            lr_t = lr * (0.5 * (1 + np.cos(np.pi * (epoch - 1) / epochs)))  # cosine decay
            losses.append(model.train_step(x_tr[idx], y_tr[idx], lr_t, t))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        history["train_loss"].append(float(np.mean(losses)))
        history["test_acc"].append(model.accuracy(x_te, y_te))
        if verbose:
            print(
                f"{name} epoch {epoch:2d}: train loss {history['train_loss'][-1]:.3f}, "
                f"test accuracy {100 * history['test_acc'][-1]:.1f} %",
                flush=True,
            )
    return model, history


def figure(model, x, path, n=16):
    """The tutorial's figure: ``n`` inputs (a grid) beside their STN outputs, PNG."""
    x = x[:n]
    _, view = model.forward(x)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cell, pad, band = CANVAS * 2, 4, 14
    panel_w = cols * (cell + pad) + pad
    sheet = np.full((rows * (cell + pad) + pad + band, 2 * panel_w + 3 * pad, 3), 245, np.uint8)
    for p, (images, title) in enumerate(((x, "DATASET IMAGES"), (view, "TRANSFORMED IMAGES"))):
        left = pad + p * (panel_w + pad)
        draw_text(sheet, title, 3, left, (40, 40, 40))
        for k in range(n):
            img = images[k, 0]
            img = np.kron(img, np.ones((cell // img.shape[0],) * 2))  # nearest upscaling
            r0 = band + pad + (k // cols) * (cell + pad)
            c0 = left + pad + (k % cols) * (cell + pad)
            sheet[r0 : r0 + cell, c0 : c0 + cell] = to_uint8(img)[..., None]
    return write_png(path, sheet)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--output", default="stn_digits.png", help="the figure (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    data = load_data(args.seed)
    print(
        f"{len(data[1])} training / {len(data[3])} test digits, {CANVAS}×{CANVAS} canvas, "
        f"{VIEW}×{VIEW} classifier input ({time.perf_counter() - t0:.1f} s to make)"
    )
    results = {}
    for use_stn in (False, True):
        t1 = time.perf_counter()
        model, hist = train(data, use_stn, args.epochs, seed=args.seed)
        results[use_stn] = (model, hist["test_acc"][-1], time.perf_counter() - t1)
    base, stn_acc = results[False][1], results[True][1]
    print(
        f"test accuracy: classifier alone {100 * base:.1f} % ({results[False][2]:.0f} s), "
        f"with the STN {100 * stn_acc:.1f} % ({results[True][2]:.0f} s); "
        f"total {time.perf_counter() - t0:.0f} s"
    )
    path = figure(results[True][0], data[2], args.output)
    print(f"Wrote {os.path.abspath(path)}")
    return 0 if stn_acc > base else 1


if __name__ == "__main__":
    sys.exit(main())
