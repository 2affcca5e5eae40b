"""stn_numba: Spatial Transformer grids, samplers and their gradients for NumPy.

PyTorch's ``affine_grid``/``grid_sample`` numbers with analytic gradients, on parallel
CPU code compiled by Numba. See :mod:`stn_numba.functional` for the conventions.

Importing the package selects Numba's fork-safe threading layer policy (TBB, else
``workqueue``) unless ``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER`` says
otherwise (:mod:`stn_numba._threads`), and caches compiled code per version of the sources
(:mod:`stn_numba._cache`).
"""

from . import _threads  # noqa: F401  (picks the threading layer before any parallel call)
from .functional import (
    affine_grid,
    affine_grid_backward,
    flow_grid,
    flow_grid_backward,
    grid_sample,
    grid_sample_backward,
    perspective_grid,
    perspective_grid_backward,
    splat,
    splat_backward,
    tps_grid,
    tps_grid_backward,
    warp_affine,
    warp_affine_backward,
    warp_flow,
    warp_flow_backward,
    warp_perspective,
    warp_perspective_backward,
)
from .layers import SpatialTransformer
from .matrices import (
    AffineThetaGrads,
    AttentionThetaGrads,
    PointsGrads,
    affine_from_points,
    affine_from_points_backward,
    affine_theta,
    affine_theta_backward,
    attention_theta,
    attention_theta_backward,
    perspective_from_points,
    perspective_from_points_backward,
    rotation_matrix,
    theta_from_cv2,
    theta_from_scipy,
    theta_to_cv2,
    theta_to_scipy,
    warp_affine_pixels,
)

__version__ = "0.1.0"

__all__ = [
    "AffineThetaGrads",
    "AttentionThetaGrads",
    "PointsGrads",
    "SpatialTransformer",
    "__version__",
    "affine_from_points",
    "affine_from_points_backward",
    "affine_grid",
    "affine_grid_backward",
    "affine_theta",
    "affine_theta_backward",
    "attention_theta",
    "attention_theta_backward",
    "flow_grid",
    "flow_grid_backward",
    "grid_sample",
    "grid_sample_backward",
    "perspective_from_points",
    "perspective_from_points_backward",
    "perspective_grid",
    "perspective_grid_backward",
    "rotation_matrix",
    "splat",
    "splat_backward",
    "theta_from_cv2",
    "theta_from_scipy",
    "theta_to_cv2",
    "theta_to_scipy",
    "tps_grid",
    "tps_grid_backward",
    "warp_affine",
    "warp_affine_backward",
    "warp_affine_pixels",
    "warp_flow",
    "warp_flow_backward",
    "warp_perspective",
    "warp_perspective_backward",
]
