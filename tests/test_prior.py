"""The policy prior: its network, its trainer (hindsight goals, evaluation seeds left out),
the planner's first mean taken from it, and the suite's `prior` method."""

import shutil

import numpy as np
import pytest
import torch
from conftest import compose_config

import envs
import planners.evaluate  # noqa: F401  (registers the evaluate config schema)
from envs.dataset import EpisodeDataset
from planners.evaluate import evaluate
from planners.mpc import build_agent
from planners.sampling import CEM, CEMConfig
from worldmodel.checkpoint import load_checkpoint
from worldmodel.prior import PolicyPrior, PriorConfig
from worldmodel.train_prior import load_examples
from worldmodel.train_prior import train as train_prior
from worldmodel.train_reader import train as train_reader
from worldmodel.weights import load_pretrained

TINY_PRIOR = ["model.hidden=16", "model.layers=1", "batch_size=8", "warmup_steps=1",
              "log_every=1", "val_fraction=0.25", "exclude_seeds=[]",
              "policies=[expert,random]"]
TINY_READER = ["model.channels=8", "model.keypoints=8", "model.hidden=16", "batch_size=8",
               "warmup_steps=1", "val_fraction=0.25", "frame_stride=4", "steps=1"]


def record_plans(agent, calls: list | None = None) -> list:
    """Records (energy, init) of each plan the agent's planner makes into `calls` (returned)."""
    calls = [] if calls is None else calls
    plan = agent.planner.plan

    def recorded(energy, generator, init=None):
        calls.append((energy, init))
        return plan(energy, generator, init=init)

    agent.planner.plan = recorded
    return calls


@pytest.fixture(scope="module")
def prior_weights(tiny_play, tiny_world_model, tmp_path_factory):
    """The tiny world model with both readers and a policy prior trained for 3 steps."""
    out = tmp_path_factory.mktemp("prior")
    weights = out / "weights"
    shutil.copytree(tiny_world_model, weights)
    for target in ("proprio", "contact"):
        train_reader(compose_config("train_reader", f"target={target}",
                                    f"data_dir={tiny_play}", f"out_dir={out / target}",
                                    f"export_dir={weights}", *TINY_READER))
    train_prior(compose_config("train_prior", f"data_dir={tiny_play}",
                               f"out_dir={out / 'run'}", f"export_dir={weights}", "steps=3",
                               *TINY_PRIOR))
    return out, weights


def test_prior_proposes_bounded_action_chunks_and_rejects_bad_input():
    prior = PolicyPrior(PriorConfig(hidden=8, layers=2, chunk=6)).eval()
    assert prior(torch.zeros(3, 7), torch.ones(3, 7)).shape == (3, 6, 4)
    with torch.no_grad():
        prior.net[-1].bias.fill_(5.0)
    proposal = prior.propose(torch.zeros(7), torch.ones(7))
    assert proposal.shape == (6, 4) and float(proposal.max()) == 1.0
    with pytest.raises(ValueError, match=r"proprio \(4\) \+ contact"):
        prior(torch.zeros(3, 4), torch.zeros(3, 7))
    with pytest.raises(ValueError, match="chunk"):
        PriorConfig(chunk=0)


def test_examples_are_labelled_with_the_next_actions_and_the_final_state(tiny_play):
    data = EpisodeDataset(tiny_play, episodes=[0])
    ref = data.refs[0]
    examples = load_examples(data, chunk=4)
    steps = ref.frames - 1
    assert examples["state"].shape == (steps, 7) and examples["actions"].shape == (steps, 4, 4)
    episode = data.episode(0)
    np.testing.assert_allclose(examples["actions"][2], episode["actions"][2:6])
    np.testing.assert_allclose(examples["goal"][0, :4], episode["proprio"][-1])
    # the last frames' chunks reach past the episode's end: masked, not trained on
    assert examples["mask"][-1].tolist() == [1, 0, 0, 0] and examples["mask"][0].all()


def test_train_prior_leaves_out_evaluation_seeds_exports_and_resumes(tiny_play, prior_weights):
    out, weights = prior_weights
    # the tiny collection ran env seeds 0-7, all of them evaluation seeds
    with pytest.raises(ValueError, match="outside the seeds"):
        train_prior(compose_config("train_prior", f"data_dir={tiny_play}",
                                   f"out_dir={out / 'other'}", "steps=1",
                                   *TINY_PRIOR[:-2], "policies=[expert,random]"))
    card = (weights / "prior.json").read_text()
    assert "no_motion_mse" in card and "hindsight" in card
    assert load_pretrained(weights, prior=True).prior.cfg.hidden == 16
    train_prior(compose_config("train_prior", f"data_dir={tiny_play}", f"out_dir={out / 'run'}",
                               "steps=5", *TINY_PRIOR))
    assert load_checkpoint(out / "run")["step"] == 5


def test_an_initial_mean_replaces_the_warm_start():
    planner = CEM(CEMConfig(horizon=2, num_samples=4, iterations=1, num_elites=2),
                  low=-torch.ones(4), high=torch.ones(4))
    seen = []

    def objective(samples):
        seen.append(samples.clone())
        return samples.square().sum((1, 2))

    init = torch.full((2, 4), 0.5)
    planner.plan(objective, torch.Generator().manual_seed(0), init=init)
    assert torch.equal(seen[0][0], init)  # the first mean is always evaluated
    with pytest.raises(ValueError, match=r"init must be \(2, 4\)"):
        planner.plan(objective, torch.Generator(), init=torch.zeros(3, 4))


def test_the_agent_plans_from_the_prior_and_the_suite_runs_it_alone(prior_weights, tmp_path):
    _, weights = prior_weights
    cfg = compose_config("mpc", f"weights_dir={weights}", "planning=plain", "env=push",
                         "planner.num_samples=8", "planner.iterations=1", "prior=true")
    agent = build_agent(cfg)
    plans = record_plans(agent)
    env = envs.make("push", image_size=64)
    obs, info = env.reset(seed=0)
    agent.reset(info["goal_pixels"])
    agent.act(obs, torch.Generator().manual_seed(0))
    _, init = plans[0]
    assert init.shape == (cfg.planner.horizon, 4) and init.abs().max() <= 1
    with pytest.raises(ValueError, match="reads the state and goal from images"):
        build_agent(cfg, load_pretrained(weights, predictor=True, prior=True))

    report = evaluate(compose_config(
        "evaluate", f"weights_dir={weights}", "planning=plain", "prior=true",
        "methods=[world_model,prior]", "tasks=[push]", "episodes=1", "max_steps=4",
        "planner.num_samples=8", "planner.iterations=1", "workers=1", "video=false",
        f"out_dir={tmp_path / 'run'}", f"report={tmp_path / 'report' / 'zero_shot'}"))
    assert set(report["results"]["push"]) == {"world_model", "prior"}
    with pytest.raises(FileNotFoundError, match="train_prior"):
        evaluate(compose_config("evaluate", f"weights_dir={tmp_path}", "methods=[prior]",
                                "tasks=[push]", "episodes=1"))


def test_prior_weight_adds_how_far_a_plan_strays_from_the_proposal(prior_weights):
    _, weights = prior_weights
    env = envs.make("push", image_size=64)
    obs, info = env.reset(seed=1)
    captured = []
    for weight in (0.0, 2.0):
        cfg = compose_config("mpc", f"weights_dir={weights}", "planning=plain", "env=push",
                             "planner.num_samples=8", "planner.iterations=1", "prior=true",
                             f"prior_weight={weight}")
        agent = build_agent(cfg)
        record_plans(agent, captured)
        agent.reset(info["goal_pixels"])
        agent.act(obs, torch.Generator().manual_seed(0))
    (plain, init), (weighted, _) = captured
    strayed = (init + 0.5).clamp(-1, 1)[None]
    stray = (strayed[0] - init).abs().mean()
    assert torch.allclose(weighted(strayed) - plain(strayed), 2.0 * stray, atol=1e-5)
    assert torch.allclose(weighted(init[None]), plain(init[None]), atol=1e-6)
    with pytest.raises(ValueError, match="only with a policy prior"):
        build_agent(compose_config("mpc", f"weights_dir={weights}", "planning=plain",
                                   "prior_weight=1.0"))


def test_with_prior_margin_the_prior_acts_unless_the_plan_is_clearly_better(prior_weights,
                                                                            tmp_path):
    _, weights = prior_weights
    env = envs.make("push", image_size=64)
    obs, info = env.reset(seed=2)
    for margin in (0.99, 0.0):
        cfg = compose_config("mpc", f"weights_dir={weights}", "planning=plain", "env=push",
                             "planner.num_samples=8", "planner.iterations=1", "prior=true",
                             f"prior_margin={margin}")
        agent = build_agent(cfg)
        captured = record_plans(agent)
        agent.reset(info["goal_pixels"])
        generator = torch.Generator().manual_seed(0)
        controls, first = agent.act(obs, generator)
        energy, init = captured[0]
        prior_energy = float(energy(init[None])[0])
        if margin == 0.0:  # the plan acts whenever it imagines a lower energy than the proposal
            assert first["prior_acts"] == (first["energy"] >= prior_energy)
            continue
        # the prior acts: one control action per image until the next plan is due
        assert first["prior_acts"] and first["energy"] == pytest.approx(prior_energy, rel=1e-5)
        assert controls.shape == (1, 4) and np.abs(controls).max() <= 1
        frameskip = agent.frameskip
        for _ in range(frameskip - 1):
            obs_next = env.step(controls[0])[0]
            controls, step = agent.act(obs_next, generator)
            assert step["prior_step"] and controls.shape == (1, 4)
        assert len(captured) == 1  # no planning between
        agent.act(env.step(controls[0])[0], generator)
        assert len(captured) == 2 and len(agent._past) == 1
    with pytest.raises(ValueError, match="only with a policy prior"):
        build_agent(compose_config("mpc", f"weights_dir={weights}", "planning=plain",
                                   "prior_margin=0.1"))
    report = evaluate(compose_config(
        "evaluate", f"weights_dir={weights}", "planning=plain", "prior=true",
        "prior_margin=0.99", "methods=[world_model]", "tasks=[push]", "episodes=1", "max_steps=6",
        "planner.num_samples=8", "planner.iterations=1", "workers=1", "video=false",
        f"out_dir={tmp_path / 'run'}", f"report={tmp_path / 'report' / 'zero_shot'}"))
    assert report["results"]["push"]["world_model"]["prior_acts_fraction"] == 1.0
    episode, = report["episodes"]
    assert episode["prior_acts"] == 2 and episode["steps"] == 6  # plans at steps 0 and 4


def test_with_prior_stall_the_world_model_plans_only_where_the_prior_stalls(prior_weights):
    _, weights = prior_weights
    env = envs.make("push", image_size=64)
    # the gripper always moves less than 10 m: the read object's distance to the goal's
    # decides (above 0 m: stalled; never above 10 m)
    for stall_distance, plans_after_first in ((0.0, 1), (10.0, 0)):
        cfg = compose_config("mpc", f"weights_dir={weights}", "planning=plain", "env=push",
                             "planner.num_samples=8", "planner.iterations=1", "prior=true",
                             "prior_margin=0.0", "prior_stall=10.0",
                             f"stall_distance={stall_distance}")
        agent = build_agent(cfg)
        planned = record_plans(agent)
        step_obs, info = env.reset(seed=2)
        agent.reset(info["goal_pixels"])
        generator = torch.Generator().manual_seed(0)
        controls, first = agent.act(step_obs, generator)  # no model step yet to judge
        assert not planned and first["prior_acts"] and not first["stalled"]
        assert controls.shape == (1, 4)
        for _ in range(agent.frameskip):
            step_obs = env.step(controls[0])[0]
            controls, second = agent.act(step_obs, generator)
        assert len(planned) == plans_after_first and second["stalled"] == bool(plans_after_first)
    # stall_plans: the world model keeps planning for that many model steps from a stall on
    agent = build_agent(compose_config(
        "mpc", f"weights_dir={weights}", "planning=plain", "env=push", "prior=true",
        "prior_margin=0.5", "prior_stall=0.01", "stall_distance=0.0", "stall_plans=3"))
    agent.reset(info["goal_pixels"])
    contact = agent.goal_contact + 1.0
    moves = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4]  # gripper x at each plan: still, then moving
    assert [agent._stalled(torch.tensor([x, 0.0, 0.0]), contact) for x in moves] == [
        False, True, True, True, False, False]
    with pytest.raises(ValueError, match="only with prior_margin"):
        build_agent(compose_config("mpc", f"weights_dir={weights}", "planning=plain",
                                   "prior=true", "prior_stall=0.01"))
