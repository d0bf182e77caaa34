"""Demonstrations in HDF5, in robomimic's layout: write, check, inspect, read, collect.

    data/                           attrs: total (samples in all demos), env_args (JSON:
                                    env_name, env_config, control_dt, obs_keys)
    data/demo_{i}/obs/{name}        [T, ...] float, one dataset per observation part
    data/demo_{i}/next_obs/{name}   [T, ...] the observation after each action
    data/demo_{i}/actions           [T, A] float, in [-1, 1]
    data/demo_{i}/rewards           [T] float
    data/demo_{i}/dones             [T] uint8, 1 at the last step if the episode ended there
                                    (collect ends every demo so: env end, time limit or success)
    data/demo_{i}/terminals         [T] uint8, 1 where the env ended the episode (not a time limit);
                                    optional (collect writes it; D4RL's name)
    demo attrs: num_samples (T), success (bool)

Files of other robomimic-style tools may hold only obs/ (any keys) and
actions: training reads just those (validate.check_structure(full=False));
`jaxrl data inspect` checks the whole layout.

Modules (import from them; their main functions share their names, so this
package re-exports nothing): `writer` (DemoWriter), `validate` (DatasetError,
validate and the checks), `inspect` (a file's summary), `reader` (load ->
Dataset), `collect` (roll a policy out in an env into a DemoWriter), `sequences` (episodes as the step
sequences a world model learns from), `demos`
(what offline learners train on: several files filtered and combined, split by
episode, normalization statistics, history and action-chunk windows on the
device), `lerobot` (LeRobot datasets, v2.1 and v3.0, read into the same demos:
data=lerobot:FOLDER), `lerobot_writer` (demos written as a LeRobot v3.0
dataset), `convert` (`jaxrl data convert`: HDF5 <-> LeRobot).
"""
