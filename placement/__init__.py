"""Deterministic placement with anti-affinity: pure functions of (request, view of the cluster).

Every agent computes the same decision from the same data, whatever the order of the nodes, and
the decision explains itself per node. No I/O, no clock, no random source lives here.

- `model`: the values (NodeView, ClusterView, PlacementRequest, Decision, Refusal).
- `place`: `place(request, view, exclude)` and the `PlacementIndex` behind it.
- `outage`: `headroom(view, sizes)` (what a region loss would do now) and `rebalance(view, sizes)`.
- `converge`: the convergence engine (deploy, scale, recovery, drain, failed servos, rolling
  updates: desired state + view -> actions) and the recovery owner per project.
- `fit`: whether one servo fits one host, the one copy of that rule.
- `hashing`: stable hashes for tie-breaking.
"""

from placement.model import ClusterView, Decision, NodeView, PlacementRequest, Refusal, ServoRef
from placement.outage import headroom, rebalance
from placement.place import PlacementIndex, place

__all__ = [
    "ClusterView",
    "Decision",
    "NodeView",
    "PlacementIndex",
    "PlacementRequest",
    "Refusal",
    "ServoRef",
    "headroom",
    "place",
    "rebalance",
]
