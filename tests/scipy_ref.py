"""scipy.ndimage as an independent reference."""

import numpy as np
from scipy import ndimage

SCIPY_MODE = {
    ("zeros", True): "grid-constant",
    ("zeros", False): "grid-constant",
    ("border", True): "nearest",
    ("border", False): "nearest",
    ("reflection", True): "mirror",
    ("reflection", False): "reflect",
}


def unnormalize(g, size, align_corners):
    if align_corners:
        return (g + 1.0) / 2.0 * (size - 1)
    return ((g + 1.0) * size - 1.0) / 2.0


def normalize(i, size, align_corners):
    """Inverse of :func:`unnormalize` (size > 1 when align_corners)."""
    if align_corners:
        return 2.0 * i / (size - 1) - 1.0
    return (2.0 * i + 1.0) / size - 1.0


def scipy_grid_sample(x, grid, mode, padding_mode, align_corners):
    """grid_sample via map_coordinates, one plane at a time, in float64."""
    dims = grid.shape[-1]
    order = {"nearest": 0, "bilinear": 1}[mode]
    out = np.zeros(x.shape[:2] + grid.shape[1:-1])
    sizes = x.shape[2:]  # (H, W) or (D, H, W)
    for n in range(x.shape[0]):
        # grid's last axis is (x, y[, z]); scipy wants (row, col) = (y, x) / (z, y, x).
        coords = [
            unnormalize(grid[n, ..., dims - 1 - k].astype(np.float64), sizes[k], align_corners)
            for k in range(dims)
        ]
        for c in range(x.shape[1]):
            out[n, c] = ndimage.map_coordinates(
                x[n, c].astype(np.float64),
                coords,
                order=order,
                mode=SCIPY_MODE[(padding_mode, align_corners)],
                cval=0.0,
                prefilter=False,
            )
    return out


def _axis_maps(size, align_corners):
    """(normalise, unnormalise) of one axis as (scale, offset) pairs."""
    if align_corners:
        to_norm = (2.0 / (size - 1) if size > 1 else 0.0, -1.0 if size > 1 else 0.0)
        to_pix = ((size - 1) / 2.0, (size - 1) / 2.0)
    else:
        to_norm = (2.0 / size, 1.0 / size - 1.0)
        to_pix = (size / 2.0, (size - 1) / 2.0)
    return to_norm, to_pix


def scipy_affine_matrix(theta, in_sizes, out_sizes, align_corners):
    """P · U_in · θ · N_out · P as a homogeneous matrix for scipy.ndimage.affine_transform.

    ``in_sizes``/``out_sizes`` are spatial shapes in array order ((H, W) or (D, H, W)).
    """
    dims = theta.shape[0]
    N_out = np.eye(dims + 1)
    U_in = np.eye(dims + 1)
    for k in range(dims):  # k-th coordinate in (x, y, z) order = array axis dims-1-k
        (ns, no), _ = _axis_maps(out_sizes[dims - 1 - k], align_corners)
        _, (us, uo) = _axis_maps(in_sizes[dims - 1 - k], align_corners)
        N_out[k, k], N_out[k, dims] = ns, no
        U_in[k, k], U_in[k, dims] = us, uo
    T = np.eye(dims + 1)
    T[:dims] = theta
    P = np.eye(dims + 1)
    P[:dims, :dims] = np.eye(dims)[::-1]
    return P @ U_in @ T @ N_out @ P


def scipy_warp_affine(x, theta, size, padding_mode, align_corners, order=1):
    out = np.zeros(x.shape[:2] + tuple(size))
    for n in range(x.shape[0]):
        M = scipy_affine_matrix(theta[n].astype(np.float64), x.shape[2:], size, align_corners)
        for c in range(x.shape[1]):
            out[n, c] = ndimage.affine_transform(
                x[n, c].astype(np.float64),
                M,
                output_shape=tuple(size),
                order=order,
                mode=SCIPY_MODE[(padding_mode, align_corners)],
                cval=0.0,
                prefilter=False,
            )
    return out
