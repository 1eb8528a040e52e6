"""The simulator's byte count (the core's summed message sizes and `PacketSizer`'s envelope)
must equal packing the packet whole: for every list length msgpack encodes differently, and
for every packet of simulated runs."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gossip.core import GossipConfig
from gossip.crypto import OVERHEAD
from gossip.messages import MsgType
from gossip.wire import PacketSizer, encoded_size, pack_messages
from sim.gossip_net import GossipNet

messages = st.one_of(
    st.builds(lambda s, n: [MsgType.PING, s, n, "me"], st.integers(0, 2**40), st.text(max_size=40)),
    st.builds(
        lambda n, i, meta: [MsgType.ALIVE, n, i, [n, 7946], 1, meta],
        st.text(max_size=30),
        st.integers(0, 2**31),
        st.dictionaries(
            st.text(max_size=8), st.integers(-(2**63), 2**64 - 1) | st.text(max_size=50), max_size=6
        ),
    ),
    st.builds(lambda n: [MsgType.SUSPECT, n, 3, "accuser"], st.text(max_size=300)),
)


@given(st.text(min_size=1, max_size=300), st.lists(messages, max_size=70))
def test_sizes_equal_packing_the_packet(sender: str, msgs: list[Any]) -> None:
    sizer = PacketSizer()
    for packet in (msgs, msgs + msgs[:20], []):
        summed = sum(map(encoded_size, packet))
        assert sizer.size(sender, len(packet), summed) == len(pack_messages(sender, packet))


def test_a_simulated_cluster_counts_exactly_what_packing_would() -> None:
    """Every packet of a small outage, inventories' APP messages included, sized both ways."""
    net = GossipNet(seed=3, config=GossipConfig())
    mismatches: list[tuple[int, int]] = []
    packed = [0]
    inner = net.network.send

    def checked(src: str, dst: str, payload: Any, size: int, reliable: bool = False) -> None:
        if isinstance(payload, list):
            real = len(pack_messages(src, payload)) + OVERHEAD
            packed[0] += 1
            if real != size:
                mismatches.append((real, size))
        inner(src, dst, payload, size, reliable)

    net.network.send = checked  # type: ignore[method-assign]
    for i in range(20):
        net.add(f"n{i:02d}", region=f"r{i % 2}", meta={"v": i})
    net.join_all("n00")
    net.run(20.0)
    for i in range(5):
        net.agents[f"n{i + 1:02d}"].core.set_meta(net.engine.now, {"v": 100 + i})
    net.crash("n10")
    net.crash("n11")
    net.run(40.0)
    assert packed[0] > 1000
    assert mismatches == []


def test_a_simulated_region_outage_with_inventories_counts_exactly_what_packing_would() -> None:
    """The simulator's whole path: a fleet whose agents publish inventories and metadata, a
    region lost and its servos recreated elsewhere (APP deltas, ALIVE updates, SUSPECT/DEAD
    floods), every UDP packet sized both ways."""
    from placement.converge import Desired
    from sim.fleet import Fleet

    net = GossipNet(seed=11)
    fleet = Fleet(net, [Desired(f"p{i}", 3, 100, 100, "region") for i in range(12)])
    for i in range(18):
        fleet.add_host(f"h{i:02d}", f"r{i % 3}", f"r{i % 3}-a", 2000, 4000)
    fleet.deploy_all()
    fleet.preload_converged()
    checked, mismatches = [0], []
    inner = net.network.send

    def checked_send(src: str, dst: str, payload: Any, size: int, reliable: bool = False) -> None:
        if isinstance(payload, list):
            checked[0] += 1
            real = len(pack_messages(src, payload)) + OVERHEAD
            if real != size:
                mismatches.append((src, real, size))
        inner(src, dst, payload, size, reliable)

    net.network.send = checked_send  # type: ignore[method-assign]
    net.run(10)
    for name in [h for h in fleet.hosts if int(h[1:]) % 3 == 0]:
        net.crash(name)
    net.run(60)
    assert fleet.counters.created > 0  # the lost servos were recreated: deltas went round
    assert checked[0] > 2000
    assert mismatches == []
