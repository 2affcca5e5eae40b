"""Small helpers for figures: the demo's test card, text labels, and PNG output.

What ``python -m stn_numba demo`` and the two examples (``examples/register.py``,
``examples/train_stn_digits.py``) draw their figures with, in NumPy only, so that the
examples use nothing but the public API and need no imaging library.

Why a module of its own rather than inlining into the examples: the test card, the
7×5 font and the PNG encoder are about 150 lines that the demo needs anyway; copying
them into each example would make the examples longer than their subject, and two
copies drift. One module with four functions is the smallest public surface that keeps
the examples short. It is not imported by ``import stn_numba``
(``import stn_numba.figures``), and it is not part of the warps' API: it has no
GPU or batch support and takes only the arrays a figure needs.
"""

import numpy as np

from . import _demo, _png

__all__ = ["draw_text", "load_test_card", "to_uint8", "write_png"]


def load_test_card():
    """The demo's test card: a (128, 128) uint8 image shipped with the package.

    A frame, two rings, a cross-hatch, the letters "STN" and a corner marker:
    asymmetric on purpose, so that every warp, mirror included, is visible.

    Returns
    -------
    card : ndarray, (128, 128), uint8
        A new array on each call.
    """
    return _demo.load_test_card()


def draw_text(image, text, row, col, color, scale=1):
    """Draw ``text`` in a 7×5-pixel capital font into ``image``, in place.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, 3)
        The image drawn into (any dtype that ``color`` converts to).
    text : str
        Letters, drawn as capitals; the font has A to Z but K and Q. Other characters
        (digits and punctuation included) are drawn as spaces.
    row, col : int
        The top-left corner of the first character, in pixels.
    color : scalar or sequence
        The value written into the glyphs' pixels (three values for an RGB image).
    scale : int, default 1
        Each font pixel is drawn as a ``scale`` × ``scale`` block.

    Notes
    -----
    Characters that fall partly outside the image are clipped; those whose corner is
    outside are skipped.
    """
    _demo.draw_text(image, text, row, col, color, scale)


def to_uint8(image):
    """A float image with values in [0, 1] as uint8 (clipped, rounded half up).

    Parameters
    ----------
    image : array_like
        Values in [0, 1]; uint8 input is returned unchanged.

    Returns
    -------
    ndarray, uint8
        ``image``'s shape.
    """
    return _png.to_uint8(image)


def write_png(path, image):
    """Write a uint8 image to ``path`` as a PNG file (no imaging library needed).

    Parameters
    ----------
    path : str or os.PathLike
        The file written; missing folders are created.
    image : ndarray, (H, W) or (H, W, 3), uint8
        Grey or RGB; :func:`to_uint8` converts a float image.

    Returns
    -------
    path
        ``path``, as given.

    Raises
    ------
    TypeError
        ``image`` is not uint8.
    ValueError
        ``image`` is not (H, W) or (H, W, 3), or is empty.
    """
    return _png.write_png(path, np.asarray(image))
