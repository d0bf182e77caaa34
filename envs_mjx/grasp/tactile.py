"""Taxel readings from MJX contacts: the normal force each pad taxel feels.

Every taxel is a small sphere that collides only with the cube. Each step the
contacts whose geoms include a taxel are summed into that taxel (absent
contacts carry zero force). A contact with pyramidal friction of dimension 3
owns 4 constraint rows; its normal force is the sum of their forces (each
pyramid edge carries part of the normal load).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

PAD_ROWS, PAD_COLS = 3, 4
PADS = ("left", "right")
PYRAMID_ROWS = 4  # constraint rows of a condim-3 pyramidal contact


def taxel_name(pad: str, row: int, col: int) -> str:
    return f"taxel_{pad}_{row}{col}"


class TactilePads:
    """The taxel geoms of both pads, in pad, row, column order; `read` turns contacts into forces."""

    def __init__(self, mj_model: mujoco.MjModel):
        if mj_model.opt.cone != mujoco.mjtCone.mjCONE_PYRAMIDAL:
            raise ValueError("tactile pads read pyramidal contact forces: keep the MJCF's cone pyramidal")
        names = [taxel_name(pad, row, col)
                 for pad in PADS for row in range(PAD_ROWS) for col in range(PAD_COLS)]
        geoms = np.array([mj_model.geom(name).id for name in names])
        wrong = [name for name, geom in zip(names, geoms, strict=True) if mj_model.geom_condim[geom] != 3]
        if wrong:
            raise ValueError(f"taxels must have condim 3 (normal and two sliding frictions): {wrong}")
        self._geoms = geoms

    def read(self, data) -> dict[str, jax.Array]:
        """{"left": [3, 4], "right": [3, 4]} normal forces in newtons (0 without contact).

        `data`: MJX data (a fixed set of contact slots), or plain MuJoCo's MjData
        (its active contacts only; NumPy arrays come back).
        """
        if isinstance(data, mujoco.MjData):
            contact, efc_force, xp = data.contact, data.efc_force, np
            # A contact row for every pyramid edge, even when no constraint is active at all.
            efc_force = np.append(efc_force, np.zeros(PYRAMID_ROWS))
        else:
            contact, efc_force, xp = data._impl.contact, data._impl.efc_force, jnp
        rows = contact.efc_address[:, None] + xp.arange(PYRAMID_ROWS)  # [contacts, 4]
        normal = xp.where(contact.efc_address >= 0, xp.sum(efc_force[rows], axis=-1), 0.0)
        touches = xp.any(contact.geom[None] == self._geoms[:, None, None], axis=-1)  # [taxels, contacts]
        force = xp.maximum(touches @ normal, 0.0)
        return dict(zip(PADS, force.reshape(len(PADS), PAD_ROWS, PAD_COLS), strict=True))
