"""Settings of runs small enough to compile and train in seconds, shared by the suite's processes."""

# Cartpole PPO: the suite's `tiny_config`, and a run tests/multi_device_runs.py repeats on 4 devices.
TINY_CARTPOLE_PPO = [
    "env.episode_length=50", "algo.num_envs=16", "algo.unroll_length=8", "algo.num_minibatches=2",
    "algo.num_updates_per_batch=2", "algo.policy_hidden_layer_sizes=[16,16]",
    "algo.value_hidden_layer_sizes=[16,16]", "train.iterations_per_call=2",
    "train.num_timesteps=1024", "train.eval_every=512", "train.checkpoint_every=512",
    "train.num_eval_envs=4", "train.tensorboard=false",
]

# Dreamer's algo settings at toy sizes (16-unit GRU, 4 x 4 categoricals, 2 updates an iteration of 16 env
# steps): with the step counter of tests/toy_envs.py, a run compiles and trains in seconds.
TINY_DREAMER = [
    "algo.num_envs=8", "algo.unroll_length=2", "algo.batch_size=4", "algo.batch_length=8",
    "algo.train_ratio=4", "algo.min_replay_size=64", "algo.replay_capacity=256", "algo.deter=16",
    "algo.hidden=16", "algo.stoch=4", "algo.classes=4", "algo.layers=1", "algo.imag_horizon=5",
]
