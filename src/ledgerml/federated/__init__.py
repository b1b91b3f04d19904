"""Federated anti-money-laundering: Flower apps, signed updates, dynamic trust, and every
round on the ledger.

    from ledgerml.federated import FlOptions, run_federated
    result = run_federated(paths, FlOptions(banks=5, rounds=10))          # simulation
    result = run_federated(paths, FlOptions(rounds=10, mode="deployment"))  # processes
    rederive_round(paths, ledger_index)                                   # audit a round

Importing this package switches Flower's and Ray's telemetry off (before flwr loads).
"""

from ledgerml.federated import _env  # noqa: F401  (must run before flwr is imported)
from ledgerml.federated.runner import FlOptions, FlResult, run_federated

__all__ = ["FlOptions", "FlResult", "run_federated"]
