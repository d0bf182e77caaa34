"""Cart-pole balance: keep a pole upright on a cart, centred, with little effort.

The reward is a product of four terms in [0, 1] per physics step of 0.01 s, so
a perfect 10 s episode earns 1,000 at any control rate (`physics_steps`:
envs_mjx.classic.ClassicConfig).
"""

import dataclasses

import jax
import jax.numpy as jnp

from envs_mjx.classic import ClassicConfig, ClassicEnv
from envs_mjx.core import ASSETS, State, array_module
from envs_mjx.rewards import tolerance


@dataclasses.dataclass(frozen=True)
class CartpoleConfig(ClassicConfig):
    episode_length: int = 1000  # control steps: 10 s episodes at physics_steps 1 (of 0.01 s)
    cart_init_range: float = 0.1  # initial cart position ~ U(-r, r), metres
    pole_init_range: float = 0.034  # initial pole angle ~ U(-r, r), radians from upright
    init_velocity_std: float = 0.01  # std of the initial joint velocities


class CartpoleBalance(ClassicEnv):
    render_camera = "side"  # the MJCF camera videos use

    def __init__(self, config: CartpoleConfig = CartpoleConfig()):
        super().__init__(ASSETS / "classic" / "cartpole.xml", config, n_substeps=config.substeps())

    @property
    def state_layout(self) -> tuple[tuple[str, int], ...]:
        return (("cart_pos", 1), ("pole_cos", 1), ("pole_sin", 1), ("cart_vel", 1), ("pole_angvel", 1))

    def reset(self, key: jax.Array) -> State:
        key_cart, key_pole, key_vel = jax.random.split(key, 3)
        cfg = self.config
        qpos = jnp.stack([
            jax.random.uniform(key_cart, minval=-cfg.cart_init_range, maxval=cfg.cart_init_range),
            jax.random.uniform(key_pole, minval=-cfg.pole_init_range, maxval=cfg.pole_init_range),
        ])
        qvel = cfg.init_velocity_std * jax.random.normal(key_vel, (2,))
        data = self.init_data(qpos, qvel)
        metrics = {name: jnp.zeros(()) for name in ("upright", "centered", "small_control", "small_velocity")}
        return State(data=data, obs=self.observation(data), reward=jnp.zeros(()), done=jnp.zeros(()),
                     metrics=metrics)

    def step(self, state: State, action: jax.Array) -> State:
        ctrl = self.action_to_ctrl(action)
        data = self.physics_step(state.data, ctrl)
        reward, terms = self.reward(data, ctrl)
        return state.replace(data=data, obs=self.observation(data), reward=reward, done=jnp.zeros(()),
                             metrics=terms)

    # Observation and reward take MJX data or plain MuJoCo's MjData (see `array_module`).

    def observe(self, data) -> jax.Array:
        xp = array_module(data.qpos)
        cart, angle = data.qpos
        return xp.stack([cart, xp.cos(angle), xp.sin(angle), data.qvel[0], data.qvel[1]])

    def reward(self, data, ctrl) -> tuple[jax.Array, dict]:
        """(the product of the terms times the physics steps of a control step, the terms)."""
        xp = array_module(data.qpos)
        cart, angle = data.qpos
        terms = {
            "upright": (xp.cos(angle) + 1.0) / 2.0,
            "centered": (1.0 + tolerance(cart, margin=2.0)) / 2.0,
            "small_control": (4.0 + tolerance(ctrl[0], margin=1.0, sigmoid="quadratic",
                                              value_at_margin=0.0)) / 5.0,
            "small_velocity": (1.0 + tolerance(data.qvel[1], margin=5.0)) / 2.0,
        }
        product = terms["upright"] * terms["centered"] * terms["small_control"] * terms["small_velocity"]
        return self.n_substeps * product, terms
