"""Kubernetes quantities for the API layer: the one implementation lives in orchestrator.quantity.

Pure.
"""

from orchestrator.quantity import parse_cpu, parse_memory, parse_quantity

__all__ = ["parse_cpu", "parse_memory", "parse_quantity"]
