"""Discrete-event simulator: thousands of agents running the real gossip, placement and recovery
code on a virtual clock and a virtual network, deterministic from a seed."""
