"""CFRL, concurrent federated RL for resource allocation among edge hosts (Zhu et al. 2022).

T. Zhu, W. Zhou, D. Ye, Z. Cheng, J. Li, "Resource allocation in IoT edge computing via concurrent federated
reinforcement learning", IEEE Internet of Things Journal, 2022. Edge hosts that compete for
shared resources learn *concurrently*: they act in one shared system at the same time (each host's decision
changes what the others get), a server aggregates a shared global model from their updates, and each host
keeps the decision about its own allocation - and its private state - to itself.

What this module implements (the paper's full text was not retrievable from this workspace's stored corpora;
the split below is this suite's reading of its scheme, stated so it can be checked against the paper):

* **Concurrent hosts**: a client is one region of hosts stepping one PettingZoo ``ParallelEnv`` jointly (every
  host decides in the same step, seeing the shared resource state the pool publishes), trained on-policy with
  an actor-critic agent acting for every host of the region.
* **Shared global model (server half)**: the critic - the value of the region's state, shared resource state
  included - is the global model: the server sets it to the sample-weighted mean of the hosts' critics,
  ``V <- sum_k (n_k / n) V_k`` (FedAvg's rule, McMahan et al. 2017, Alg. 1, applied to the critic only).
* **Local decision-making (client half)**: the actor (the allocation policy: CPU/bandwidth shares and the pool
  claim) is personal: it is never uploaded and never overwritten, so a region's allocation adapts to its own
  hosts while the value estimates that guide its updates learn from every region.

What distinguishes it from FedAvg (tested in ``tests/federation/test_cfrl.py``): FedAvg averages actor and
critic; CFRL uploads only the critic and every client keeps its own actor. From FedPer (shared bodies,
personal heads): CFRL shares the whole critic and keeps the whole actor. It refuses, before any training, an
env without hosts contending for a shared resource (``SHARED_RESOURCE_ENVS``, the PettingZoo form) and an
agent without separate ``actor.*`` / ``critic.*`` parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.base import Weights
from agents.parallel_adapter import is_parallel_env
from federation.client import Client, ClientHook
from federation.strategies.base import Strategy, validate_results
from federation.strategies.fedavg import weighted_average
from federation.types import FederationError, FitResult

#: envs whose PettingZoo form has hosts contending for a shared resource (their ``metadata["shared_resource"]``)
SHARED_RESOURCE_ENVS = ("frl/MecAllocation-v0",)
#: the agent's parameters that stay on the client: the allocation policy
LOCAL_PREFIX = "actor."
#: the agent's parameters that form the global model
GLOBAL_PREFIX = "critic."


def _env_name(env: object) -> str:
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    return str(getattr(env, "metadata", {}).get("name", type(env).__name__))


def check_shared_resource_env(env: object) -> None:
    """``FederationError`` (one line: the env and the allowed ones) unless ``env`` is a shared-resource
    PettingZoo form: CFRL's hosts must act concurrently on resources they share."""
    if not (is_parallel_env(env) and getattr(env, "metadata", {}).get("shared_resource", False)):
        raise FederationError(
            f"cfrl cannot run on {_env_name(env)!r}: it needs edge hosts contending for a shared resource in one "
            f"multi-agent env (env_form='parallel'); allowed: {', '.join(SHARED_RESOURCE_ENVS)}")


class ConcurrentHostHook(ClientHook):
    """Client half of CFRL: the actor (``actor.*``) is personal, only the critic leaves the client."""

    def attach(self, client: Client) -> None:
        check_shared_resource_env(client.env)
        agent = client.agent
        keys = list(agent.get_weights())
        other = [k for k in keys if not k.startswith((LOCAL_PREFIX, GLOBAL_PREFIX))]
        if other or not any(k.startswith(LOCAL_PREFIX) for k in keys) or not any(k.startswith(GLOBAL_PREFIX)
                                                                                   for k in keys):
            raise FederationError(
                f"cfrl needs an actor-critic agent with separate actor.* and critic.* parameters; agent "
                f"{getattr(agent, 'name', type(agent).__name__)!r} has {sorted({k.split('.')[0] for k in keys})}; "
                "allowed: ppo or a2c with shared_body=False")
        # the agent names its parameters; the method decides which of them are personal (as FedPer's heads)
        agent.personal_prefixes = tuple(dict.fromkeys((*agent.personal_prefixes, LOCAL_PREFIX)))

    def upload(self, client: Client) -> Weights:
        return {k: v for k, v in client.agent.get_shared_weights().items() if not k.startswith(LOCAL_PREFIX)}


class CFRL(Strategy):
    name = "cfrl"
    summary = ("concurrent hosts on a shared resource: global critic averaged, allocation actor kept local "
               "(Zhu et al. 2022)")

    def client_hook(self) -> ClientHook:
        return ConcurrentHostHook()

    def aggregate_train(self, rnd: int, weights: Weights, results: Sequence[FitResult]) -> Weights:
        validate_results(weights, results)
        leaked = [k for r in results for k in r.weights if k.startswith(LOCAL_PREFIX)]
        if leaked:
            raise FederationError(f"cfrl: an upload carries the local actor parameter {leaked[0]!r}; allowed: "
                                  f"{GLOBAL_PREFIX}* only")
        new = weighted_average([r.weights for r in results], [r.num_samples for r in results])
        return {k: new.get(k, v) for k, v in weights.items()}
