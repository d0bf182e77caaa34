"""Settings of runs small enough to compile and train in seconds, shared by the suite's processes."""

# Cartpole PPO: the suite's `tiny_config`, and a run tests/multi_device_runs.py repeats on 4 devices.
TINY_CARTPOLE_PPO = [
    "env.episode_length=50", "algo.num_envs=16", "algo.unroll_length=8", "algo.num_minibatches=2",
    "algo.num_updates_per_batch=2", "algo.policy_hidden_layer_sizes=[16,16]",
    "algo.value_hidden_layer_sizes=[16,16]", "train.iterations_per_call=2",
    "train.num_timesteps=1024", "train.eval_every=512", "train.checkpoint_every=512",
    "train.num_eval_envs=4", "train.tensorboard=false",
]
