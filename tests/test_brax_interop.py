"""brax's own PPO trainer trains one of our envs, through `envs_mjx.wrap_for_training`.

This is the interop promise of the env contract: brax wraps the env with our
wrap_env_fn, its unrolls read our `truncation`, `episode_metrics` and
`episode_done` info keys (a missing one is a KeyError), its loss uses
`truncation`, and its Evaluator runs on the env and reads `steps`.
"""

import functools

# isort: off
import envs_mjx  # before brax, so that our quiet import of MJX is the one cached
# isort: on

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from brax.training.agents.ppo import networks as ppo_networks
from brax.training.agents.ppo import train as brax_ppo

EPISODE_LENGTH = 200  # control steps of 0.01 s; the eval return is at most 200

# Found by a small sweep (5 seeds, 400k steps, deterministic eval): the final
# eval return was 184-197 against an untrained 84-148. The same seeds' numbers
# move with the float details of the machine and of XLA's settings: with the
# suite's compile flags on a 2-core AMD EPYC, seeds 0-3 ended at 154, 193, 179
# and 189 from 135, 147, 126 and 101, so the test asks for 70% of the maximum
# and a gain of 15 (the smallest gain seen there was 20). The knobs that matter:
#  - learning_rate 1e-3: at 3e-4 the return is still falling after 500k steps.
#  - discounting 0.97: at 0.99 one seed in three ended below its start.
#  - normalize_observations off: brax normalizes without clipping (std_eps=0),
#    and cos(angle) barely varies while the pole is up, so a tilt becomes a
#    huge input; the observations are O(1) already.
# Early training dips below the untrained policy (it stops holding still
# before it learns to balance), so fewer steps make a flaky test.
BRAX_PPO = dict(
    num_timesteps=400_000,
    num_envs=128,
    batch_size=32,  # batch_size * num_minibatches = num_envs: one unroll per env per update
    num_minibatches=4,
    num_updates_per_batch=4,
    unroll_length=20,
    episode_length=EPISODE_LENGTH,
    learning_rate=1e-3,
    entropy_cost=1e-2,
    discounting=0.97,
    max_grad_norm=1.0,
    normalize_observations=False,
    num_evals=2,  # at step 0 and after training, from one training epoch (one compile)
    num_eval_envs=32,
    deterministic_eval=True,  # the untrained mean action is a fair "do little" baseline
    # log_training_metrics stays off: its per-update host callback costs ~12 s here.
)


def train_cartpole(seed: int):
    """brax PPO on cartpole-balance; returns (make_policy, params, final metrics, progress log)."""
    progress = []
    make_policy, params, metrics = brax_ppo.train(
        environment=envs_mjx.make("cartpole-balance"),
        wrap_env_fn=envs_mjx.wrap_for_training,
        network_factory=functools.partial(
            ppo_networks.make_ppo_networks,
            policy_hidden_layer_sizes=(32, 32),
            value_hidden_layer_sizes=(32, 32),
        ),
        progress_fn=lambda step, m: progress.append((step, dict(m))),
        seed=seed,
        **BRAX_PPO,
    )
    return make_policy, params, metrics, progress


@pytest.fixture(scope="module")
def trained():
    return train_cartpole(seed=0)


@pytest.mark.slow
def test_brax_ppo_improves_on_our_cartpole(trained):
    _, _, metrics, progress = trained
    evals = [(step, m["eval/episode_reward"]) for step, m in progress if "eval/episode_reward" in m]
    assert [step for step, _ in evals][0] == 0 and len(evals) == 2, evals
    (_, initial), (final_step, final) = evals
    assert final_step >= BRAX_PPO["num_timesteps"]
    assert final >= 0.7 * EPISODE_LENGTH, f"eval returns {evals}"
    assert final >= initial + 15.0, f"eval returns {evals}"
    assert metrics["eval/episode_reward"] == final
    # Our EpisodeWrapper's `steps` drives brax's eval episode length.
    assert metrics["eval/avg_episode_length"] == EPISODE_LENGTH


@pytest.mark.slow
def test_brax_training_metrics_are_finite(trained):
    _, _, metrics, progress = trained
    training = {k: v for k, v in metrics.items() if k.startswith("training/")}
    for name in ("training/sps", "training/policy_loss", "training/v_loss", "training/entropy_loss",
                 "training/kl_mean"):
        assert name in training, sorted(training)
    for step, m in progress:
        assert all(np.all(np.isfinite(np.asarray(v))) for v in m.values()), (step, m)
    assert training["training/sps"] > 0


@pytest.mark.slow
def test_returned_params_make_a_working_policy(trained):
    # brax's final eval (asserted above) ran these very params; here they act outside brax.
    make_policy, params, _, _ = trained
    policy = make_policy(params, deterministic=True)
    env = envs_mjx.make("cartpole-balance")
    assert jax.eval_shape(env.reset, jax.random.PRNGKey(0)).obs.shape == (5,)

    # Observations are [cart x, cos(angle), sin(angle), cart velocity, angular velocity];
    # a positive angle tips the pole towards +x, which the cart must move under.
    angles = jnp.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    obs = jnp.stack([jnp.zeros(5), jnp.cos(angles), jnp.sin(angles), jnp.zeros(5), jnp.zeros(5)], axis=-1)
    actions, _ = jax.jit(policy)(obs, jax.random.PRNGKey(0))
    actions = np.asarray(actions)
    assert actions.shape == (5, env.action_size)
    assert np.all(np.isfinite(actions)) and np.all(np.abs(actions) <= 1.0)
    assert np.all(np.diff(actions[:, 0]) > 0), actions  # the further it leans, the harder it pushes
    assert actions[0, 0] < 0 < actions[4, 0], actions  # towards the side it leans
    again, _ = jax.jit(policy)(obs, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(actions, np.asarray(again))  # deterministic ignores the key
