"""The RSSM: filtering a chunk, resets at an episode's first step, imagined rollouts, gradients through the
categorical samples, the zero-initialised reward head; the convolutions of image observations; the world
model's losses fall on recorded data, vectors and images."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl import twohot
from jaxrl.world_model import (
    RSSM,
    ConvDecoder,
    ConvEncoder,
    NormMLP,
    PatchConv,
    RMSNorm,
    WorldModel,
    WorldModelConfig,
    check_image_shape,
    imagine,
    observe,
    world_model_loss,
)

T, BATCH, EMBED, ACTION = 6, 3, 5, 2
RSSM_SMALL = RSSM(deter=16, hidden=8, stoch=4, classes=3)


@pytest.fixture(scope="module")
def params():
    latent = RSSM_SMALL.initial((BATCH,))
    action, embed = jnp.zeros((BATCH, ACTION)), jnp.zeros((BATCH, EMBED))
    first = jnp.zeros(BATCH)
    return RSSM_SMALL.init(jax.random.PRNGKey(0), latent, action, embed, first, jax.random.PRNGKey(1))


def filtering(params):
    return functools.partial(RSSM_SMALL.apply, params, method=RSSM.observe_step)


def imagining(params):
    return functools.partial(RSSM_SMALL.apply, params, method=RSSM.imagine_step)


def chunk(seed: int):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.uniform(-1, 1, (T, BATCH, ACTION)), jnp.float32),
            jnp.asarray(rng.normal(size=(T, BATCH, EMBED)), jnp.float32))


def test_filtering_a_chunk_gives_a_latent_state_and_logits_per_step(params):
    actions, embeds = chunk(0)
    latents, prior, posterior = observe(filtering(params), RSSM_SMALL.initial((BATCH,)), actions, embeds,
                                        jnp.zeros((T, BATCH)), jax.random.PRNGKey(2))
    assert latents.deter.shape == (T, BATCH, 16) and latents.stoch.shape == (T, BATCH, 4, 3)
    assert prior.shape == posterior.shape == (T, BATCH, 4, 3)
    assert latents.features().shape == (T, BATCH, 16 + 12)
    np.testing.assert_allclose(latents.stoch.sum(-1), 1.0, atol=1e-6)  # one class per variable
    assert np.all(np.isfinite(latents.deter)) and not np.allclose(latents.deter[0], latents.deter[-1])


def test_an_episodes_first_step_forgets_what_came_before(params):
    (actions_a, embeds_a), (actions_b, embeds_b) = chunk(0), chunk(1)
    # The same steps from 3 on, where an episode starts; different ones before.
    actions_b, embeds_b = actions_b.at[3:].set(actions_a[3:]), embeds_b.at[3:].set(embeds_a[3:])
    first = jnp.zeros((T, BATCH)).at[3].set(1.0)
    key, start = jax.random.PRNGKey(3), RSSM_SMALL.initial((BATCH,))
    a = observe(filtering(params), start, actions_a, embeds_a, first, key)[0]
    b = observe(filtering(params), start, actions_b, embeds_b, first, key)[0]
    np.testing.assert_allclose(a.deter[3:], b.deter[3:], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a.stoch[3:], b.stoch[3:])
    assert not np.allclose(a.deter[:3], b.deter[:3])
    without_reset = observe(filtering(params), start, actions_b, embeds_b, jnp.zeros((T, BATCH)), key)[0]
    assert not np.allclose(without_reset.deter[3:], a.deter[3:])


def test_an_imagined_rollout_starts_from_the_given_state_and_stays_finite(params):
    actions, embeds = chunk(0)
    start = jax.tree.map(lambda x: x[-1], observe(filtering(params), RSSM_SMALL.initial((BATCH,)), actions,
                                                  embeds, jnp.zeros((T, BATCH)), jax.random.PRNGKey(4))[0])
    policy = lambda features, key: jnp.tanh(features[..., :ACTION])  # noqa: E731
    rollout = jax.jit(lambda s: imagine(imagining(params), policy, s, 15, jax.random.PRNGKey(5)))
    latents, taken = rollout(start)
    assert latents.deter.shape == (16, BATCH, 16) and taken.shape == (15, BATCH, ACTION)
    np.testing.assert_array_equal(latents.deter[0], start.deter)
    np.testing.assert_allclose(taken[0], policy(start.features(), None))
    assert np.all(np.isfinite(latents.deter)) and np.all(np.isfinite(taken))


def test_gradients_reach_the_posterior_through_its_samples(params):
    actions, embeds = chunk(0)

    def loss(params):  # of the next step's deter, which reads the sampled stoch
        latents = observe(filtering(params), RSSM_SMALL.initial((BATCH,)), actions, embeds,
                          jnp.zeros((T, BATCH)), jax.random.PRNGKey(6))[0]
        return jnp.sum(latents.deter[-1] ** 2)

    grads = jax.grad(loss)(params)["params"]["posterior_net"]
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) > 1e-6


def test_a_zero_initialised_reward_head_predicts_exactly_zero():
    head = NormMLP([8, 8], 255, zero_output=True)
    x = jnp.asarray(np.random.default_rng(7).normal(size=(4, 10)), jnp.float32)
    logits = head.apply(head.init(jax.random.PRNGKey(0), x), x)
    np.testing.assert_array_equal(twohot.decode(logits, twohot.symexp_bins()), np.zeros(4))


def recorded_chunks(batch: int = 16, length: int = 32, seed: int = 0) -> dict:
    """Time-major chunks of a rotating, pushed 2-d point: reward -x0^2, terminated once |x0| > 1.5, and a
    new episode (from a random point, a zero action) after each termination."""
    rng = np.random.default_rng(seed)
    chunk = {name: np.zeros((length, batch) + shape, np.float32) for name, shape in
             (("obs", (3,)), ("action", (1,)), ("reward", ()), ("is_first", ()), ("is_terminal", ()))}
    rotate = np.array([[0.98, 0.15], [-0.15, 0.98]])
    x, first = rng.normal(size=(batch, 2)), np.ones(batch, bool)
    for t in range(length):
        action = np.where(first[:, None], 0.0, rng.uniform(-1, 1, (batch, 1)))
        moved = x @ rotate.T + 0.2 * action * np.array([0.0, 1.0])
        x = np.where(first[:, None], rng.normal(size=(batch, 2)), moved)
        terminal = ~first & (np.abs(x[:, 0]) > 1.5)
        chunk["obs"][t] = np.concatenate([x, np.cos(x[:, :1])], -1)
        chunk["action"][t], chunk["is_first"][t], chunk["is_terminal"][t] = action, first, terminal
        chunk["reward"][t] = np.where(first, 0.0, -x[:, 0] ** 2)
        first = terminal
    assert chunk["is_terminal"].sum() > 5  # some episodes end within the chunks
    return chunk


def as_images(chunk: dict, side: int = 8) -> dict:
    """The chunk with each observation drawn as a uint8 image [side, side, 1]: a bright blob at the point's
    position (x0, x1 in [-2, 2] across the image) on a dark ground."""
    centres = (np.clip(chunk["obs"][..., :2], -2, 2) + 2) / 4 * (side - 1)
    grid = np.arange(side, dtype=np.float32)
    blob = np.exp(-((grid[:, None] - centres[..., None, None, 1]) ** 2
                    + (grid[None, :] - centres[..., None, None, 0]) ** 2) / 2)
    return chunk | {"obs": np.round(255 * blob[..., None]).astype(np.uint8)}


@pytest.mark.parametrize("observations", ["vectors", "images"])
def test_the_world_models_losses_fall_on_recorded_data(observations):
    cfg = WorldModelConfig(deter=32, hidden=32, stoch=8, classes=8, cnn_depth=4)
    chunk = recorded_chunks()
    if observations == "images":
        chunk = as_images(chunk)
    chunk = jax.tree.map(jnp.asarray, chunk)
    model = WorldModel(cfg, obs_shape=chunk["obs"].shape[2:])
    latent, key = RSSM(32, 32, 8, 8).initial((16,)), jax.random.PRNGKey(0)
    params = model.init(key, latent, chunk["action"][0], chunk["obs"][0], chunk["is_first"][0], key)
    optimizer = optax.adam(1e-3)

    @jax.jit
    def update(params, opt_state, key):
        loss = functools.partial(world_model_loss, model)
        grads, (_, metrics) = jax.grad(loss, has_aux=True)(params, chunk, latent, key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state, metrics

    opt_state, history = optimizer.init(params), []
    for step_key in jax.random.split(key, 300):
        params, opt_state, metrics = update(params, opt_state, step_key)
        history.append(jax.device_get(metrics))
    first, last = history[0], {k: np.mean([h[k] for h in history[-20:]]) for k in history[0]}
    assert first["loss/reward"] == pytest.approx(np.log(255), rel=1e-4)  # a zero head: uniform over the bins
    for name in ("reconstruction", "reward", "continue"):
        assert last[f"loss/{name}"] < 0.5 * first[f"loss/{name}"], (name, first, last)
    assert all(np.isfinite(v) for h in history for v in h.values())


@pytest.mark.parametrize(("size", "stride"), [(4, 2), (3, 1)])
def test_a_patch_convolution_is_laxs_convolution_with_same_padding(size, stride):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
    conv = PatchConv(5, size, stride)
    params = conv.init(jax.random.PRNGKey(1), x)
    kernel = params["params"]["Dense_0"]["kernel"].reshape(size, size, 3, 5)  # patches: row, column, channel
    want = jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv.apply(params, x), want, rtol=1e-5, atol=1e-5)


def test_images_are_encoded_to_an_embedding_and_decoded_to_their_shape():
    images = jnp.zeros((3, 2, 32, 32, 1))  # any leading axes
    encoder, decoder = ConvEncoder(depth=4, out_size=10), ConvDecoder(depth=4, image_shape=(32, 32, 1))
    embeds = encoder.apply(encoder.init(jax.random.PRNGKey(0), images), images)
    features = jnp.ones((3, 2, 7))
    decoded = decoder.apply(decoder.init(jax.random.PRNGKey(0), features), features)
    assert embeds.shape == (3, 2, 10) and decoded.shape == (3, 2, 32, 32, 1)
    with pytest.raises(ValueError, match=r"vectors \[N\] or images \[H, W, C\]"):
        check_image_shape((4, 4))
    for bad in ((32, 16, 1), (12, 12, 1), (4, 4, 1)):
        with pytest.raises(ValueError, match="square with a power-of-two side of at least 8"):
            check_image_shape(bad)


def test_rms_norm_is_flaxs_with_the_same_parameter():
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 7))
    ours = RMSNorm()
    params = ours.init(jax.random.PRNGKey(1), x)
    params = jax.tree.map(lambda p: p * 1.5, params)  # a scale that is not all ones
    np.testing.assert_allclose(ours.apply(params, x), nn.RMSNorm().apply(params, x), rtol=1e-5, atol=1e-6)
