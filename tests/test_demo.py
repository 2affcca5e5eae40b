"""``python -m stn_numba demo``: the shipped image, the PNG it writes, the CLI.

The PNG is decoded here independently (signature, IHDR, zlib-inflated IDAT, per-row
filter bytes) and compared with the pixels the demo drew.
"""

import os
import struct
import zlib

import numpy as np
import pytest

from stn_numba import __main__ as cli
from stn_numba import _demo
from stn_numba._png import encode_png, load_image


def decode_png(data):
    """(width, height, color type, pixels) of an 8-bit PNG without interlacing."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, color, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    channels = {0: 1, 2: 3}[color]
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + w * channels)
    assert (rows[:, 0] == 0).all()  # filter type None on every row
    pixels = rows[:, 1:].reshape((h, w, channels) if channels > 1 else (h, w))
    return w, h, color, pixels


def test_shipped_image_is_the_test_card():
    assert os.path.isfile(_demo.TEST_CARD)  # package data (pyproject: data/*.npy)
    card = _demo.load_test_card()
    assert card.dtype == np.uint8 and card.shape == (128, 128)
    np.testing.assert_array_equal(card, _demo.make_test_card(128))
    assert card.min() < 20 and card.max() > 235  # uses the range


def test_demo_writes_the_sheet_it_drew(tmp_path):
    out = tmp_path / "sheet.png"
    result = _demo.run(output=str(out), verbose=False, time_it=False)
    w, h, color, pixels = decode_png(out.read_bytes())
    sheet = result["sheet"]
    assert (h, w, 3) == sheet.shape and color == 2
    np.testing.assert_array_equal(pixels, sheet)
    # the input tile holds the test card, unchanged (grey → equal RGB channels)
    card = _demo.load_test_card()
    pad, band = 6, 13
    tile = pixels[pad + band : pad + band + 128, pad : pad + 128]
    for c in range(3):
        np.testing.assert_array_equal(tile[..., c], card)
    # each output tile is the warp, and every warp matched scipy.ndimage
    assert set(result["outputs"]) == set(_demo.TRANSFORMS)
    assert result["max_diff"] < 1e-9
    zoom = result["outputs"]["zoom"][0]
    r0, c0 = pad + 2 * band + pad + 128, pad + 2 * (128 + pad)
    np.testing.assert_array_equal(
        pixels[r0 : r0 + 128, c0 : c0 + 128, 0], np.rint(np.clip(zoom, 0, 1) * 255)
    )


def test_cli_demo(tmp_path, capsys):
    out = tmp_path / "one.png"
    assert cli.main(["demo", "--output", str(out), "--transform", "zoom"]) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "scipy.ndimage" in text and "ms per warp" in text
    w, h, _, _ = decode_png(out.read_bytes())
    assert (w, h) == (2 * (128 + 6) + 6, 2 * (128 + 13 + 6) + 6)


def test_cli_user_npy_image(tmp_path, capsys):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    src, out = tmp_path / "img.npy", tmp_path / "o.png"
    np.save(src, rgb)
    np.testing.assert_array_equal(load_image(str(src)), np.moveaxis(rgb, -1, 0) / 255.0)
    assert cli.main(["demo", "--image", str(src), "--output", str(out), "--transform", "tps"]) == 0
    w, h, color, _ = decode_png(out.read_bytes())
    assert (w, h, color) == (2 * (30 + 6) + 6, 2 * (20 + 13 + 6) + 6, 2)


def test_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--transform", "swirl"])
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 3, 4, 5)))
    with pytest.raises(SystemExit):
        cli.main(["demo", "--image", str(bad), "--output", str(tmp_path / "x.png")])
    assert "image must have shape" in capsys.readouterr().err


def test_png_encoder_gray_and_errors():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    w, h, color, pixels = decode_png(encode_png(img))
    assert (w, h, color) == (4, 3, 0)
    np.testing.assert_array_equal(pixels, img)
    with pytest.raises(TypeError, match="uint8"):
        encode_png(img.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((2, 2, 4), np.uint8))
