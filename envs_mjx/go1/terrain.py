"""Procedural rough ground: a heightfield made at load time from a seed, no image files.

The elevation is a sum of random plane waves (smooth hills a few metres long)
plus a finer random grid of bumps, so feet meet slopes and steps of a few
centimetres. `height_at` looks the ground height up inside jit, for spawning
on the surface and for measuring how high the feet and the trunk are.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from envs_mjx.core import array_module


@dataclasses.dataclass(frozen=True)
class TerrainConfig:
    seed: int = 0  # the same seed gives the same ground
    hill_height: float = 0.06  # peak-to-trough of the smooth hills, metres
    hill_wavelength: tuple[float, float] = (1.5, 6.0)  # range of hill lengths, metres
    bump_height: float = 0.03  # peak-to-trough of the fine bumps, metres
    bump_spacing: float = 0.4  # distance between bump centres, metres


def make_heights(cfg: TerrainConfig, nrow: int, ncol: int, half_x: float, half_y: float) -> np.ndarray:
    """Elevations [nrow, ncol] in metres, 0 at the lowest point."""
    rng = np.random.default_rng(cfg.seed)
    x = np.linspace(-half_x, half_x, ncol)[None, :]
    y = np.linspace(-half_y, half_y, nrow)[:, None]
    hills = np.zeros((nrow, ncol))
    for _ in range(8):
        wavelength = rng.uniform(*cfg.hill_wavelength)
        angle, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        hills += np.sin(2 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / wavelength + phase)
    hills = (hills - hills.min()) / max(np.ptp(hills), 1e-9) * cfg.hill_height
    # Bumps: a coarse random grid, upsampled bilinearly so each bump is a smooth tent.
    coarse_x = np.arange(-half_x, half_x + cfg.bump_spacing, cfg.bump_spacing)
    coarse_y = np.arange(-half_y, half_y + cfg.bump_spacing, cfg.bump_spacing)
    coarse = rng.uniform(0, cfg.bump_height, (len(coarse_y), len(coarse_x)))
    rows = np.stack([np.interp(x[0], coarse_x, row) for row in coarse])
    bumps = np.stack([np.interp(y[:, 0], coarse_y, col) for col in rows.T], axis=1)
    heights = hills + bumps
    return heights - heights.min()


def fill_heightfield(model: mujoco.MjModel, cfg: TerrainConfig) -> np.ndarray:
    """Write procedural elevations into the model's only heightfield; the elevations in metres."""
    nrow, ncol = int(model.hfield_nrow[0]), int(model.hfield_ncol[0])
    half_x, half_y, max_height, _ = model.hfield_size[0]
    heights = make_heights(cfg, nrow, ncol, half_x, half_y)
    if heights.max() > max_height:
        raise ValueError(f"terrain peaks at {heights.max():.3f} m but the heightfield's elevation range is "
                         f"{max_height} m; lower hill_height/bump_height or raise the hfield's size in "
                         "the MJCF")
    model.hfield_data[:] = (heights / max_height).ravel()  # MuJoCo stores elevations scaled to [0, 1]
    return heights


@dataclasses.dataclass(frozen=True)
class HeightMap:
    """Ground elevations on a regular grid, for bilinear look-ups inside jit."""

    heights: np.ndarray | None  # [nrow, ncol] float32; row i is y, column j is x. None: a flat floor at 0
    half_x: float = 1.0
    half_y: float = 1.0

    def height_at(self, xy):
        """Ground height under points xy [..., 2] (NumPy or JAX); off the grid, the nearest edge's height."""
        xp = array_module(xy)
        if self.heights is None:
            return xp.zeros(xy.shape[:-1])
        nrow, ncol = self.heights.shape
        col = (xy[..., 0] + self.half_x) / (2 * self.half_x) * (ncol - 1)
        row = (xy[..., 1] + self.half_y) / (2 * self.half_y) * (nrow - 1)
        col = xp.clip(col, 0.0, ncol - 1.001)
        row = xp.clip(row, 0.0, nrow - 1.001)
        c0, r0 = xp.floor(col).astype(xp.int32), xp.floor(row).astype(xp.int32)
        fc, fr = col - c0, row - r0
        h = xp.asarray(self.heights)
        top = h[r0, c0] * (1 - fc) + h[r0, c0 + 1] * fc
        bottom = h[r0 + 1, c0] * (1 - fc) + h[r0 + 1, c0 + 1] * fc
        return top * (1 - fr) + bottom * fr
