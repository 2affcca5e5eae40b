"""stn_numba: Spatial Transformer grids, samplers and their gradients for NumPy.

PyTorch's ``affine_grid``/``grid_sample`` numbers with analytic gradients, on parallel
CPU code compiled by Numba. See :mod:`stn_numba.functional` for the conventions.
"""

from .functional import (
    affine_grid,
    affine_grid_backward,
    grid_sample,
    grid_sample_backward,
    warp_affine,
    warp_affine_backward,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "affine_grid",
    "affine_grid_backward",
    "grid_sample",
    "grid_sample_backward",
    "warp_affine",
    "warp_affine_backward",
]

# ----------------------------------------------------------------------------
# Issue 5: transformation matrices (parameterised affine, pixel-space conversions)
# ----------------------------------------------------------------------------
from .matrices import (
    AffineThetaGrads,
    AttentionThetaGrads,
    affine_theta,
    affine_theta_backward,
    attention_theta,
    attention_theta_backward,
    theta_from_cv2,
    theta_from_scipy,
    theta_to_cv2,
    theta_to_scipy,
    warp_affine_pixels,
)

__all__ += [
    "AffineThetaGrads",
    "AttentionThetaGrads",
    "affine_theta",
    "affine_theta_backward",
    "attention_theta",
    "attention_theta_backward",
    "theta_from_cv2",
    "theta_from_scipy",
    "theta_to_cv2",
    "theta_to_scipy",
    "warp_affine_pixels",
]
