"""Thin-plate spline, host side: control-point checks and the (K + 3) linear systems.

The spline of one sample, with control points ``s_k`` (sources) and values ``t_k``
(targets), both normalised (x, y)::

    f(p) = a_0 + a_1 x + a_2 y + Σ_k w_k U(|p - s_k|),    U(r) = r² log(r²),  U(0) = 0

(each of a_0, a_1, a_2, w_k is a 2-vector: one spline per output coordinate). Its
coefficients c = [w_1 .. w_K, a_0, a_1, a_2] (a (K + 3, 2) array) solve

    L c = [t; 0],   L = [[Kmat + λ I, P], [Pᵀ, 0]],   Kmat_jk = U(|s_j - s_k|),
    P_k = (1, x_k, y_k)

once per sample, in float64, here on the host (the systems are tiny). The per-pixel
evaluation of ``f`` runs in the kernels (:func:`stn_numba._kernels.tps_point`).

The grid is linear in the targets: ``grid[p] = B[p] · L⁻¹[:, :K] · t`` with
``B[p] = (U(|p - s_1|) .. U(|p - s_K|), 1, x, y)``. Hence, with ``G = Σ_p B[p]ᵀ ⊗ grad[p]``
(a (K + 3, 2) array summed by the kernels), ``dL/dt = (L⁻¹)[:, :K]ᵀ G = (L⁻¹ G)[:K]``
since L is symmetric: one more solve with the same matrix.
"""

import math
import numbers

import numpy as np

from ._validate import describe

#: Centred control points whose smaller singular value is below this fraction of the
#: larger one count as collinear (P would be singular to working precision).
COLLINEAR_RTOL = 1e-10


def radial(r2):
    """U as a function of r²: r² log(r²), 0 at r = 0 (NumPy, elementwise)."""
    r2 = np.asarray(r2, dtype=np.float64)
    out = np.zeros_like(r2)
    pos = r2 > 0
    out[pos] = r2[pos] * np.log(r2[pos])
    return out


def check_regularization(value, name="regularization"):
    """A finite real number >= 0, as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0; got {describe(value)}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return value


def check_points(source, target):
    """Shapes of the control points: source (K, 2) or (N, K, 2), target (N, K, 2), K >= 3.

    Works on NumPy and device arrays alike (shapes only). Returns (N, K).
    """
    if target.ndim != 3 or target.shape[2] != 2:
        raise ValueError(
            "target_points must have shape (N, K, 2) (normalised (x, y)); "
            f"got {tuple(target.shape)}"
        )
    n, k = target.shape[0], target.shape[1]
    if source.ndim not in (2, 3) or source.shape[source.ndim - 1] != 2:
        raise ValueError(
            "source_points must have shape (N, K, 2) or (K, 2) (normalised (x, y)); "
            f"got {tuple(source.shape)}"
        )
    if source.ndim == 3 and source.shape[0] != n:
        raise ValueError(
            f"source_points.shape[0] (batch) must equal target_points.shape[0] = {n} "
            "(or pass source_points of shape (K, 2), shared by the batch); "
            f"got {tuple(source.shape)}"
        )
    ks = source.shape[source.ndim - 2]
    if ks != k:
        raise ValueError(
            f"source_points and target_points must have the same number of control points K; "
            f"got source_points {tuple(source.shape)} and target_points {tuple(target.shape)}"
        )
    if k < 3:
        raise ValueError(
            f"a thin-plate spline needs K >= 3 control points (not all on one line); got K = {k} "
            f"(target_points of shape {tuple(target.shape)})"
        )
    return n, k


def check_finite(points, name):
    if not np.all(np.isfinite(points)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(points))[0])
        raise ValueError(f"{name} must be finite; got {float(points[bad])!r} at index {bad}")


def host(x):
    """A NumPy copy of a device array (NumPy arrays pass through)."""
    return x if isinstance(x, np.ndarray) else x.copy_to_host()


def _check_geometry(src, lam):
    """Degenerate control points of ``src`` (S, K, 2) float64 -> ValueError naming them."""
    batch = src.ndim == 3 and src.shape[0] > 1
    for m in range(src.shape[0]):
        pts = src[m]
        where = f" in sample {m}" if batch else ""
        if lam == 0.0:
            d2 = np.sum((pts[:, None, :] - pts[None, :, :]) ** 2, axis=-1)
            i, j = np.nonzero(np.triu(d2 == 0.0, 1))
            if i.size:
                raise ValueError(
                    f"source_points has duplicate control points{where}: points {int(i[0])} and "
                    f"{int(j[0])} are both {tuple(float(v) for v in pts[i[0]])}; remove one, or "
                    "pass regularization > 0 (then the spline approximates the targets)"
                )
        centred = pts - pts.mean(axis=0)
        sv = np.linalg.svd(centred, compute_uv=False)
        if sv[1] <= COLLINEAR_RTOL * sv[0] or sv[0] == 0.0:
            raise ValueError(
                f"source_points are all collinear{where} (on one line, or all equal): the "
                "affine part of the thin-plate spline is then undetermined; spread at least 3 "
                "control points out of line"
            )


def system(source, lam):
    """L (S, K + 3, K + 3) in float64 for source points (S, K, 2) float64."""
    s, k = source.shape[0], source.shape[1]
    diff = source[:, :, None, :] - source[:, None, :, :]
    L = np.zeros((s, k + 3, k + 3), dtype=np.float64)
    L[:, :k, :k] = radial(np.sum(diff * diff, axis=-1)) + lam * np.eye(k)
    L[:, :k, k] = 1.0
    L[:, :k, k + 1 :] = source
    L[:, k, :k] = 1.0
    L[:, k + 1 :, :k] = np.swapaxes(source, 1, 2)
    return L


def _solve(L, rhs):
    """Batched solve; a singular system (only from degenerate geometry) -> ValueError."""
    try:
        out = np.linalg.solve(L, rhs)
    except np.linalg.LinAlgError:
        out = None
    if out is None or not np.all(np.isfinite(out)):
        raise ValueError(
            "source_points give a singular thin-plate-spline system (degenerate control "
            "points: duplicated or collinear); move them apart or pass regularization > 0"
        )
    return out


def source_array(source, lam):
    """Source points as checked float64 (S, K, 2), C-contiguous; S is 1 when shared.

    Raises ValueError for non-finite or degenerate points (before any kernel runs).
    """
    src = host(source).astype(np.float64)
    check_finite(src, "source_points")
    if src.ndim == 2:
        src = src[None]
    src = np.ascontiguousarray(src)
    _check_geometry(src, lam)
    return src


def _batched(L, n):
    return L if L.shape[0] == n else np.broadcast_to(L, (n, *L.shape[1:]))


def prepare(source, target, lam):
    """Check the point values and solve: (coefficients (N, K + 3, 2), sources (S, K, 2)),
    both float64 C-contiguous; S is 1 for shared source points, else N."""
    src = source_array(source, lam)
    tgt = host(target).astype(np.float64)
    check_finite(tgt, "target_points")
    n, k = tgt.shape[0], tgt.shape[1]
    if n == 0:
        return np.zeros((0, k + 3, 2)), src
    rhs = np.zeros((n, k + 3, 2), dtype=np.float64)
    rhs[:, :k] = tgt
    return np.ascontiguousarray(_solve(_batched(system(src, lam), n), rhs)), src


def target_gradient(G, src, lam):
    """dL/d target_points (N, K, 2) float64 from G = Σ_p B[p]ᵀ ⊗ grad[p] (N, K + 3, 2)
    and the checked sources ``src`` of :func:`source_array`."""
    n, k = G.shape[0], G.shape[1] - 3
    if n == 0:
        return np.zeros((0, k, 2))
    return _solve(_batched(system(src, lam), n), G)[:, :k]  # L symmetric: L⁻ᵀ G = L⁻¹ G
