"""The advertised address for a wildcard bind, and which API listeners a configuration needs."""

from __future__ import annotations

from node.config import AgentConfig
from node.netaddr import choose_advertise, interface_addrs, is_loopback, source_addr_towards


def test_a_specific_bind_is_advertised_as_it_is() -> None:
    assert choose_advertise("10.1.2.3", [("10.9.9.9", 7946)]) == "10.1.2.3"


def test_a_wildcard_bind_advertises_the_route_to_the_first_seed() -> None:
    assert choose_advertise("0.0.0.0", [("127.0.0.1", 7946)]) == "127.0.0.1"


def test_without_seeds_a_wildcard_bind_never_advertises_the_wildcard() -> None:
    addr = choose_advertise("0.0.0.0")
    assert addr not in ("0.0.0.0", "")
    assert addr in interface_addrs() or addr == "127.0.0.1"


def test_interfaces_include_loopback_and_no_route_gives_none() -> None:
    assert "127.0.0.1" in interface_addrs()
    assert source_addr_towards("no-such-host.invalid", 7946) is None
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and not is_loopback("10.0.0.1")


def test_api_bind_defaults_keep_the_api_private_when_gossip_listens_everywhere() -> None:
    lan = AgentConfig(bind="0.0.0.0", advertise="10.0.0.5")
    assert lan.api_bind_addr == "127.0.0.1"
    # peers reach /internal/ at the advertised API URL: served there as well
    assert lan.internal_bind_addr == "10.0.0.5"
    specific = AgentConfig(bind="10.0.0.5")
    assert specific.api_bind_addr == "10.0.0.5" and specific.internal_bind_addr is None
    open_api = AgentConfig(bind="0.0.0.0", advertise="10.0.0.5", api_bind="0.0.0.0")
    assert open_api.internal_bind_addr is None
    loop = AgentConfig(bind="127.0.0.1")
    assert loop.api_bind_addr == "127.0.0.1" and loop.internal_bind_addr is None
