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

# issue 5: forward warping (splatting)
from .functional import splat, splat_backward

__all__ += ["splat", "splat_backward"]
