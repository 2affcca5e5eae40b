"""A minimal PNG writer (zlib + struct, no dependencies) and image loading for the demo.

``write_png`` writes 8-bit grayscale (H, W) or RGB (H, W, 3) arrays, filter type 0 on
every row, one IDAT chunk: enough for contact sheets and figures. ``load_image`` reads
``.npy`` always and other formats through Pillow when it is installed.
"""

import os
import struct
import zlib

import numpy as np


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(image):
    """PNG bytes of a uint8 (H, W) grayscale or (H, W, 3) RGB array."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8; got {image.dtype}")
    if image.ndim == 2:
        color = 0
    elif image.ndim == 3 and image.shape[2] == 3:
        color = 2
    else:
        raise ValueError(f"image must have shape (H, W) or (H, W, 3); got {image.shape}")
    h, w = image.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"image must not be empty; got shape {image.shape}")
    rows = np.ascontiguousarray(image).reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter 0
    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def write_png(path, image):
    """Write a uint8 (H, W) or (H, W, 3) array to ``path`` as PNG; returns the path."""
    data = encode_png(image)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def to_uint8(image):
    """Scale a float image with values in [0, 1] to uint8 (clipped); uint8 passes through."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def load_image(path):
    """An image file as float64 (C, H, W) in [0, 1] (C = 1 or 3).

    ``.npy``: (H, W), (H, W, C) or (C, H, W) with C in {1, 3, 4} (alpha dropped); uint8
    is divided by 255, other integer types by their maximum, floats are taken as they are.
    Other formats (PNG, JPEG, ...) need Pillow.
    """
    if str(path).lower().endswith(".npy"):
        a = np.load(path, allow_pickle=False)
    else:
        try:
            from PIL import Image
        except ImportError:
            raise ImportError(
                f"reading {os.path.basename(str(path))!r} needs Pillow "
                "(pip install 'stn_numba[demo]'); .npy files work without it"
            ) from None
        with Image.open(path) as im:
            a = np.asarray(im.convert("L" if im.mode in ("L", "I", "1", "F") else "RGB"))
    if a.ndim == 2:
        a = a[None]
    elif a.ndim == 3 and a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3, 4):
        a = np.moveaxis(a, -1, 0)
    if a.ndim != 3 or a.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"image must have shape (H, W), (H, W, C) or (C, H, W) with C in (1, 3, 4); "
            f"got {a.shape} from {path}"
        )
    a = a[:3]
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float64) / (255.0 if a.dtype == np.uint8 else np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    else:
        raise TypeError(f"image must hold integers or floats; got {a.dtype} from {path}")
    return np.ascontiguousarray(a)
