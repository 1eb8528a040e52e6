"""Join tokens: what goes in comes out, damage and expiry are refused with a clear reason, and
the agent's start-up turns a token into seeds and a key file (node.agent.prepare)."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node import join_token
from node.agent import KEY_FILE_NAME, prepare
from node.config import AgentConfig
from node.join_token import JoinTokenError, issue, parse, seeds_for
from node.keys import load_keys

KEY = bytes(range(32))
NOW = 1_800_000_000.0


def test_round_trip_keeps_seeds_keys_and_expiry() -> None:
    other = secrets.token_bytes(16)
    token = issue(["10.0.0.1:7946", "10.0.0.2:7946"], [KEY, other], NOW, 3600)
    assert token.startswith(join_token.PREFIX) and len(token) < 200
    got = parse(token)
    assert got.seeds == ("10.0.0.1:7946", "10.0.0.2:7946")
    assert got.keys == (KEY, other)
    assert got.expires_at_s == int(NOW + 3600)
    assert not got.expired(NOW + 3599) and got.expired(NOW + 3600)


def test_a_token_cut_short_or_edited_is_refused() -> None:
    token = issue(["10.0.0.1:7946"], [KEY], NOW, 60)
    with pytest.raises(JoinTokenError, match="damaged"):
        parse(token[:-3])
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    with pytest.raises(JoinTokenError, match="damaged"):
        parse(flipped)
    with pytest.raises(JoinTokenError, match="not a Shoal join token"):
        parse("hello")


@given(st.text(max_size=300))
def test_garbage_after_the_prefix_is_refused_cleanly(junk: str) -> None:
    with pytest.raises(JoinTokenError):
        parse(join_token.PREFIX + junk)


def test_issue_refuses_what_would_not_work() -> None:
    with pytest.raises(JoinTokenError):
        issue([], [KEY], NOW, 60)
    with pytest.raises(JoinTokenError):
        issue(["a:1"], [b"short"], NOW, 60)
    with pytest.raises(JoinTokenError):
        issue(["a:1"], [KEY], NOW, 0)


def test_seeds_are_the_issuer_first_then_live_peers() -> None:
    peers = [("alive", "10.0.0.3:7946"), ("dead", "10.0.0.4:7946"), ("alive", "10.0.0.2:7946")]
    assert seeds_for("10.0.0.1:7946", peers) == ["10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.3:7946"]


def test_the_printed_command_names_the_token_runtime_and_region() -> None:
    cmd = join_token.join_command("shoal-join1.xyz", "docker", "eu")
    assert cmd == "shoal agent --join-token shoal-join1.xyz --runtime docker --region eu"


def test_prepare_turns_a_token_into_seeds_and_a_private_key_file(tmp_path: Path) -> None:
    token = issue(["10.9.8.7:7946"], [KEY], NOW, 600)
    config = AgentConfig(name="b", data_dir=tmp_path / "d", join_token=token, bind="127.0.0.1")
    ready, keys = prepare(config, NOW)
    assert ready.join == ("10.9.8.7:7946",)
    assert keys == [KEY]
    key_file = tmp_path / "d" / KEY_FILE_NAME
    assert ready.cluster_key_file == key_file
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_keys(key_file)[0] == [KEY]
    # a restart with the same (now expired) command: the key is already here, seeds still help
    again, keys_again = prepare(config, NOW + 10_000)
    assert keys_again == [KEY] and again.join == ("10.9.8.7:7946",)


def test_an_expired_token_on_a_new_host_is_refused(tmp_path: Path) -> None:
    token = issue(["10.9.8.7:7946"], [KEY], NOW, 600)
    config = AgentConfig(name="b", data_dir=tmp_path / "d", join_token=token)
    with pytest.raises(JoinTokenError, match="expired"):
        prepare(config, NOW + 601)


def test_without_a_key_file_the_key_is_made_once_and_kept(tmp_path: Path) -> None:
    config = AgentConfig(name="a", data_dir=tmp_path / "d")
    first, keys = prepare(config, NOW)
    _, keys_again = prepare(config, NOW)
    assert keys == keys_again and len(keys[0]) == 32
    assert first.cluster_key_file == tmp_path / "d" / KEY_FILE_NAME


def test_an_explicit_key_file_wins_over_the_token_keys(tmp_path: Path) -> None:
    mine = tmp_path / "k"
    own_key = secrets.token_bytes(32)
    mine.write_text(base64.b64encode(own_key).decode() + "\n")
    token = issue(["10.9.8.7:7946"], [KEY], NOW, 600)
    config = AgentConfig(name="b", data_dir=tmp_path / "d", join_token=token, cluster_key_file=mine)
    ready, keys = prepare(config, NOW)
    assert keys == [own_key] and ready.cluster_key_file == mine
    assert not (tmp_path / "d" / KEY_FILE_NAME).exists()


def test_a_wildcard_bind_advertises_the_address_that_routes_to_the_seed(tmp_path: Path) -> None:
    token = issue(["127.0.0.1:7946"], [KEY], NOW, 600)
    config = AgentConfig(name="b", data_dir=tmp_path / "d", join_token=token, bind="0.0.0.0")
    ready, _ = prepare(config, NOW)
    assert ready.advertise == "127.0.0.1"
    explicit = AgentConfig(name="c", data_dir=tmp_path / "e", bind="0.0.0.0", advertise="10.1.1.1")
    assert prepare(explicit, NOW)[0].advertise == "10.1.1.1"
