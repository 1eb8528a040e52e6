"""Deterministic placement with anti-affinity: pure functions of (request, view of the cluster).

Every agent computes the same decision from the same data, whatever the order of the nodes, and
the decision explains itself per node. No I/O, no clock, no random source lives here.
"""
