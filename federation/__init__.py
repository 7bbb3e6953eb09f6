"""Federation layer: strategies, clients, the round loop."""

from federation.client import Client
from federation.evaluation import evaluate_policy
from federation.server import History, run_federation
from federation.strategies import STRATEGIES, Strategy, make_strategy
from federation.types import FederationError, FitIns, FitResult

__all__ = ["STRATEGIES", "Client", "FederationError", "FitIns", "FitResult", "History", "Strategy",
           "evaluate_policy", "make_strategy", "run_federation"]
