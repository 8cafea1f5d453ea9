"""Planner contracts, for every planner: shapes, bounds, determinism, warm start, and
finding the minimum of a known quadratic."""

import pytest
import torch

from planners.sampling import PLANNERS, CEMConfig, make_planner

H, A = 3, 2
LOW, HIGH = -torch.ones(A), torch.ones(A)


def planner(name, **overrides):
    config_class = PLANNERS[name][0]
    defaults = dict(horizon=H, num_samples=64, iterations=12)
    return make_planner(config_class(**(defaults | overrides)), low=LOW, high=HIGH)


def quadratic(target):
    return lambda actions: (actions - target).square().sum(dim=(1, 2))


TARGET = torch.tensor([[0.5, -0.3], [0.1, 0.8], [-0.6, 0.2]])


@pytest.mark.parametrize("name", PLANNERS)
def test_finds_the_minimum_of_a_quadratic(name):
    result = planner(name).plan(quadratic(TARGET), torch.Generator().manual_seed(0))
    assert result.actions.shape == (H, A)
    torch.testing.assert_close(result.actions, TARGET, atol=0.08, rtol=0)
    assert result.energy == pytest.approx(float(quadratic(TARGET)(result.actions[None])))
    best = result.best_energy_per_iteration
    assert len(best) == 12 and best[-1] < best[0]


@pytest.mark.parametrize("name", PLANNERS)
def test_stays_inside_the_bounds(name):
    seen = []

    def objective(actions):
        seen.append(actions.clone())
        return quadratic(torch.full((H, A), 5.0))(actions)  # the minimum lies outside

    result = planner(name).plan(objective, torch.Generator().manual_seed(0))
    samples = torch.cat(seen)
    assert samples.shape[1:] == (H, A)
    assert bool((samples >= LOW).all() and (samples <= HIGH).all())
    assert float(result.actions.min()) > 0.75  # pushed against the upper bound


@pytest.mark.parametrize("name", PLANNERS)
def test_same_seed_same_plan(name):
    first = planner(name).plan(quadratic(TARGET), torch.Generator().manual_seed(3))
    second = planner(name).plan(quadratic(TARGET), torch.Generator().manual_seed(3))
    third = planner(name).plan(quadratic(TARGET), torch.Generator().manual_seed(4))
    assert torch.equal(first.actions, second.actions)
    assert not torch.equal(first.actions, third.actions)


@pytest.mark.parametrize("name", PLANNERS)
def test_warm_start_shifts_the_previous_plan(name):
    p = planner(name, iterations=1, num_samples=16)
    p.plan(quadratic(TARGET), torch.Generator().manual_seed(0))
    previous = p._previous.clone()
    p.shift(1)
    mean, _ = p._initial()
    torch.testing.assert_close(mean, torch.cat([previous[1:], previous[-1:]]))
    p.reset()
    mean, _ = p._initial()
    assert torch.equal(mean, torch.zeros(H, A))


def test_bad_configs_name_the_field():
    with pytest.raises(ValueError, match="num_elites"):
        CEMConfig(num_samples=8, num_elites=9)
    with pytest.raises(ValueError, match="valid: cem, mppi"):
        make_planner(type("Cfg", (), {"name": "ilqr"})(), low=LOW, high=HIGH)
    with pytest.raises(ValueError, match="bounds"):
        make_planner(CEMConfig(), low=HIGH, high=LOW)
