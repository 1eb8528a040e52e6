"""SWIM + Lifeguard membership and state dissemination.

A pure protocol core (fed decoded messages and the current time, it returns effects: packets to
send, deadlines wanted, membership events) plus a thin Trio transport (UDP probes and gossip, TCP
push-pull and join). The core imports no socket, clock or global random, so `sim/` runs it as is.
"""
