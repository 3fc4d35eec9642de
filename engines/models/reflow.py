"""Reflow: a 2-rectified flow (Liu et al. 2022, sec. 2.2 and Algorithm 1) for sampling in one or two steps.

Flow matching learns the velocity of the straight path between *independent* noise and data; the paths of its
ODE then curve, since many straight lines cross any x_t. Reflow draws couplings from that ODE, (z, x_0 = ODE(z))
for noise z, and trains a velocity network again on the straight lines between each coupled pair:

    E_{t, (z, x_0)} |v_theta((1 - t) x_0 + t z, t) - (z - x_0)|^2,

the flow-matching loss with the coupling in place of an independent draw (`flow_matching_loss(..., noise=z)`).
The coupled lines cross far less, so the new ODE's paths are nearly straight and a single Euler step goes most
of the way (Liu et al. Theorem 3.3: rectifying never raises the transport cost, and repeated rectification
straightens the paths). The network is the flow model's, warm-started from it as in Liu et al.'s experiments;
its couplings are made by `python -m engines.make_couplings` (`engines.training.couplings`), and its card says
how many and what they cost.
"""
from __future__ import annotations

from engines.family import Family
from engines.models.flow import FlowConfig, FlowEngine


class ReflowEngine(FlowEngine):
    """A flow engine (the same network, samplers, likelihood and straight path) whose weights were reflowed."""
    family = "reflow"


DESCRIPTION = ("2-rectified flow (Liu et al. 2022): the flow-matching model's network, warm-started from it and "
               "trained again on straight lines between coupled pairs (noise z, the flow's own image of z from its "
               "ODE), so that its ODE's paths are nearly straight and one or two Euler steps suffice. EMA weights "
               "(decay 0.998). Sampling: our Euler, Heun or midpoint, or diffusers' FlowMatch schedulers; the "
               "report's row uses 2 Euler steps on the uniform grid.")
FAMILY = Family(name="reflow", title="reflow", engine=ReflowEngine,
                trainer="engines.training.reflow:ReflowTrainer", colour="tab:olive", description=DESCRIPTION,
                evaluation_options={"sampler": "euler", "steps": 2, "spacing": "uniform"},
                caption=" ({sampler}, {steps} steps)", quality_bar=None, likelihood=True, straight_path=True,
                race_options=({"sampler": "euler", "spacing": "uniform"},),
                parent_options={"flow_from": "flow"},
                objective="flow matching again, on the flow's own (noise, image) couplings")

__all__ = ["FAMILY", "FlowConfig", "ReflowEngine"]
