"""Latent-space planners: CEM and MPPI over the world model's imagined futures, the goal
image energy, and the MPC agent.

    from planners import CEM, CEMConfig
    planner = CEM(CEMConfig(), low=-torch.ones(4), high=torch.ones(4))
    result = planner.plan(objective, generator)     # objective: (N, H, A) -> (N,)
"""

from planners.sampling import CEM, MPPI, CEMConfig, MPPIConfig, PlanResult, make_planner

__all__ = ["CEM", "MPPI", "CEMConfig", "MPPIConfig", "PlanResult", "make_planner"]
