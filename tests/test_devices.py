"""The env batch of a PPO run split over local devices (scalegym.agents.devices).

The two-device run happens in a subprocess with two forced CPU devices (`jax_num_cpu_devices`
must be set before JAX starts its backend); it trains the same run on 1 and on 2 devices.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from scalegym.agents.devices import env_mesh, local_devices, shard_runner
from scalegym.agents.train import train_agent, training_request
from scalegym.core.resolve import resolve_env

TWO_DEVICES = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    sys.path.insert(0, "tests")
    import toy_envs  # noqa: F401  (ToyChain-v0)
    import scalegym
    from scalegym.agents.devices import env_mesh, shard_runner
    from scalegym.agents.ppo.algorithm import make_ppo
    from scalegym.agents.ppo.config import PPOConfig
    from scalegym.agents.train import train_agent, training_request
    from scalegym.core.resolve import resolve_env

    assert len(jax.local_devices()) == 2
    # Where the leaves go: env-batched ones split along E (axis 1 after seeds), the rest whole.
    env, params = scalegym.make("ToyChain-v0")
    ppo = make_ppo(env, params, PPOConfig(num_envs=16, num_steps=16))
    runner = jax.jit(jax.vmap(ppo.init))(jax.random.split(jax.random.key(0), 2))
    runner = shard_runner(runner, env_mesh(2, 16))
    obs = jax.tree.leaves(runner.obs)[0]
    weights = jax.tree.leaves(runner.train_state.params)[0]
    out = {
        "obs": list(obs.shape),
        "obs_shards": [list(s.data.shape) for s in obs.addressable_shards],
        "weights_whole": all(s.data.shape == weights.shape for s in weights.addressable_shards),
    }
    run = json.loads(sys.argv[1])
    env = resolve_env("ToyChain-v0")
    result = train_agent(training_request(env, "ppo", devices=2, **run), progress=False)
    out["devices"], out["curve"], out["sps"] = result.devices, result.curve, result.sps
    print(json.dumps(out))
    """
)


def test_one_device_is_no_mesh_and_bad_counts_are_named():
    assert env_mesh(None, 16) is None and env_mesh(1, 7) is None  # this machine: 1 CPU device
    runner = object()
    assert shard_runner(runner, None) is runner
    with pytest.raises(ValueError, match="only 1 local cpu device"):
        local_devices(len(jax.local_devices()) + 1)
    with pytest.raises(ValueError, match="allowed: integers >= 1"):
        local_devices(0)


# test_ppo_runs.py's checkpoint run (the 1-device programs are shared with it).
RUN = dict(steps=16 * 16 * 6, num_seeds=2, seed=0, agent_params=dict(num_envs=16, num_steps=16))


def run_on_two_devices(script: str, *args: str) -> dict:
    """Run `script` in a subprocess (it forces two CPU devices); its last stdout line as JSON."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_ppo_run_on_two_devices_matches_one_device():
    out = run_on_two_devices(TWO_DEVICES, json.dumps(RUN))
    single = train_agent(
        training_request(resolve_env("ToyChain-v0"), "ppo", devices=1, **RUN), progress=False
    )
    one = {"devices": single.devices, "curve": single.curve}
    two = {"devices": out["devices"], "curve": out["curve"]}
    k, e, *rest = out["obs"]  # [K, E, ...]: each device holds [K, E/2, ...]; weights whole
    assert (k, e) == (2, 16) and out["obs_shards"] == [[k, e // 2, *rest]] * 2
    assert out["weights_whole"]
    assert one["devices"]["devices"] == 1 and two["devices"]["devices"] == 2
    assert [p["step"] for p in one["curve"]] == [p["step"] for p in two["curve"]]
    for a, b in zip(one["curve"], two["curve"], strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if key != "perf/sps":
                np.testing.assert_allclose(b[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


BENCH_TWO_DEVICES = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    import scalegym
    from scalegym.suites.measures import bench_jax_env, make_rollout, split_rollout

    # ThreeBody: uneven while loops per lane (the regrouping rule) inside each device's share.
    env, params = scalegym.make("ThreeBody-v0")
    batch, steps = 8, 3
    _, state = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(jax.random.PRNGKey(0), batch), params
    )
    actions = jax.random.randint(jax.random.PRNGKey(1), (steps, batch), 0, 10)
    keys = jax.random.split(jax.random.PRNGKey(2), (steps, batch))
    rollout = make_rollout(env)
    whole = jax.jit(rollout)(state, actions, keys, params)
    split = jax.jit(split_rollout(rollout, 2))(state, actions, keys, params)
    out = {
        "pos": bool(np.array_equal(np.asarray(whole[0].pos), np.asarray(split[0].pos))),
        "total": [float(whole[1]), float(split[1])],
        "work": [np.asarray(whole[2]).tolist(), np.asarray(split[2]).tolist()],
    }
    records = bench_jax_env(env, params, [8], num_steps=2, repeats=1, progress=False, devices=2)
    out["record"] = {k: records[0][k] for k in ("devices", "batch_size", "sps")}
    try:
        bench_jax_env(env, params, [3], num_steps=2, repeats=1, progress=False, devices=2)
    except ValueError as err:
        out["error"] = str(err)
    print(json.dumps(out))
    """
)


def test_bench_split_over_two_devices_steps_the_same_envs():
    out = run_on_two_devices(BENCH_TWO_DEVICES)
    assert out["pos"]  # every env ends where the one-device rollout leaves it
    np.testing.assert_allclose(out["total"][1], out["total"][0], rtol=1e-5)
    (done_whole, offered_whole), (done_split, offered_split) = out["work"]
    assert done_split == done_whole  # the same substeps, summed over the devices
    assert offered_split <= offered_whole  # each device waits only for its own slowest lane
    assert out["record"]["devices"] == 2 and out["record"]["batch_size"] == 8
    assert out["record"]["sps"] > 0
    assert out["error"] == "batch size 3 does not split over devices=2; use a multiple of 2"


STEP_TWO_DEVICES = textwrap.dedent(
    """
    import json
    import jax
    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec
    import scalegym
    from scalegym.agents.devices import ENV_AXIS, env_mesh, per_device

    # ThreeBody's batched step regroups its lanes (sorts, gathers) across the batch.
    env, params = scalegym.make("ThreeBody-v0", max_substeps=200)
    mesh = env_mesh(2, 8)
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    actions = jnp.arange(8, dtype=jnp.int32) % 10
    args = jax.device_put((keys, states, actions), NamedSharding(mesh, PartitionSpec(ENV_AXIS)))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    names = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")

    def collectives(fn):
        text = jax.jit(fn).lower(*args, params).compile().as_text()
        return sum(text.count(name) for name in names)

    spmd, own = jax.jit(step)(*args, params), jax.jit(per_device(step, mesh))(*args, params)
    out = {
        "spmd": collectives(step),
        "per_device": collectives(per_device(step, mesh)),
        "same": all(
            bool(np.array_equal(np.asarray(a), np.asarray(b)))
            for a, b in zip(jax.tree.leaves(spmd[:5]), jax.tree.leaves(own[:5]), strict=True)
        ),
        "shards": [list(s.data.shape) for s in own[0].addressable_shards],
    }
    print(json.dumps(out))
    """
)


def test_each_device_steps_its_own_envs():
    # PPO's env step under a mesh (`per_device`, shard_map): no collective in the compiled step,
    # the same outputs as XLA's own partitioning of the batched step, which does insert
    # collectives for ThreeBody's regrouping. Those made PPO on ThreeBody run at 71 env steps/s
    # on 2 forced CPU devices against 2,847 on one; with per_device, 4,460 against 2,991.
    out = run_on_two_devices(STEP_TWO_DEVICES)
    assert out["per_device"] == 0 and out["spmd"] > 0
    assert out["same"]
    assert out["shards"] == [[4, 13], [4, 13]]  # observations [E/2, 13] on each device
