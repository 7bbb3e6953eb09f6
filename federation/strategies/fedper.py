"""Personal heads. FedPer (Arivazhagan et al. 2019, "Federated Learning with Personalization Layers"): the
network body is averaged, each client keeps its own head, so its model is the global body + its head. FedRep
(Collins et al. 2021, "Exploiting Shared Representations for Personalized Federated Learning", ICML, Alg. 1):
same split, but each local round first trains the head with the body frozen, then the body with the head
frozen.
"""

from __future__ import annotations

from federation.client import Client, ClientHook
from federation.strategies.base import check_number
from federation.strategies.fedavg import FedAvg
from federation.types import FederationError


class PersonalHeadHook(ClientHook):
    """Client half of FedPer: the agent's head is personal (its ``personal_prefixes``), so it never leaves."""

    def attach(self, client: Client) -> None:
        if not client.agent.personal_prefixes:
            raise FederationError("fedper/fedrep need agents built with personal='head' (the scenario runner "
                                  "does this from strategy.agent_overrides)")


class HeadThenBodyHook(PersonalHeadHook):
    """Client half of FedRep: ``head_fraction`` of the steps train the head (body frozen), the rest the body."""

    def __init__(self, head_fraction: float) -> None:
        self.head_fraction = head_fraction

    def learn(self, client: Client, steps: int) -> tuple[int, dict[str, float]]:
        agent = client.agent
        head_steps = int(round(self.head_fraction * steps))
        body = tuple(k for k in agent.get_weights() if not agent.is_personal(k))
        agent.set_trainable(agent.personal_prefixes)
        stats = {f"head/{k}": v for k, v in agent.learn(client.env, head_steps).items()} if head_steps else {}
        agent.set_trainable(body)
        if steps > head_steps:
            stats.update(agent.learn(client.env, steps - head_steps))
        agent.set_trainable(None)
        return steps, stats


class FedPer(FedAvg):
    """Each agent knows its own heads (``personal="head"``: DQN's Q head, actor/critic heads and log σ)."""

    name = "fedper"
    summary = "shared body, personal head that never leaves the client (Arivazhagan et al. 2019)"
    agent_overrides = {"personal": "head"}

    def client_hook(self) -> ClientHook:
        return PersonalHeadHook()


class FedRep(FedPer):
    name = "fedrep"
    summary = "FedPer with head-then-body local updates (Collins et al. 2021)"

    def __init__(self, *, head_fraction: float = 0.5) -> None:
        self.head_fraction = check_number("head_fraction", head_fraction, 0.0, 1.0, lo_open=True)

    def client_hook(self) -> ClientHook:
        return HeadThenBodyHook(self.head_fraction)

    def params(self) -> dict[str, float | int | str]:
        return {"head_fraction": self.head_fraction}
