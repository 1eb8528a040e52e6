"""The agent process: config, host duties and the wiring of every part into one Trio nursery.

What lives here: `config` (flags and defaults), `capacity` (what this host can give), `logfmt`
(the one log format), `agent` (the nursery that runs gossip, the API server, the reconciler and
recovery). Host duties (runtime, durable store, admission) live beside them. The pure protocol
and placement logic does not: it sits in `gossip/` and `placement/` so the simulator can run it.
"""
