"""Taxel readings from MJX contacts: the normal force each pad taxel feels.

MJX's JAX backend gives every candidate geom pair a fixed slot in
`contact` (absent contacts keep their slot with zero force), so which slot
belongs to which taxel is known once, when the env is built. A contact with
pyramidal friction of dimension 3 owns 4 constraint rows; its normal force is
the sum of their forces (each pyramid edge carries part of the normal load).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from envs_mjx._mjx import mjx

PAD_ROWS, PAD_COLS = 3, 4
PADS = ("left", "right")
PYRAMID_ROWS = 4  # constraint rows of a condim-3 pyramidal contact


def taxel_name(pad: str, row: int, col: int) -> str:
    return f"taxel_{pad}_{row}{col}"


class TactilePads:
    """Maps the MJX contact slots of every taxel so `read` is a fixed gather."""

    def __init__(self, mj_model: mujoco.MjModel, mjx_model):
        if mj_model.opt.cone != mujoco.mjtCone.mjCONE_PYRAMIDAL:
            raise ValueError("tactile pads read pyramidal contact forces: keep the MJCF's cone pyramidal")
        data = jax.jit(mjx.forward)(mjx_model, mjx.make_data(mjx_model))
        contact = data._impl.contact
        slot_geoms = np.asarray(contact.geom)
        efc_address = np.asarray(contact.efc_address)
        rows = []
        for pad in PADS:
            for row in range(PAD_ROWS):
                for col in range(PAD_COLS):
                    geom = mj_model.geom(taxel_name(pad, row, col)).id
                    slots = np.flatnonzero((slot_geoms == geom).any(axis=1))
                    if len(slots) != 1 or np.asarray(contact.dim)[slots[0]] != 3:
                        raise ValueError(f"{taxel_name(pad, row, col)} needs exactly one condim-3 contact "
                                         f"pair, with the cube; found {len(slots)}")
                    rows.append(efc_address[slots[0]] + np.arange(PYRAMID_ROWS))
        self._efc_rows = jnp.asarray(np.stack(rows))  # [taxels, 4]

    def read(self, data) -> dict[str, jax.Array]:
        """{"left": [3, 4], "right": [3, 4]} normal forces in newtons (0 without contact)."""
        force = jnp.sum(data._impl.efc_force[self._efc_rows], axis=-1)
        pads = jnp.maximum(force, 0.0).reshape(len(PADS), PAD_ROWS, PAD_COLS)
        return dict(zip(PADS, pads, strict=True))
