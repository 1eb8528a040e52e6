import base64
from pathlib import Path

import pytest

from api.cli import keygen
from node.keys import KeyFileError, load_keys, parse_keys


def test_keygen_output_loads_as_a_ring_with_the_first_key_primary(tmp_path: Path) -> None:
    k1, k2 = keygen(), keygen()
    path = tmp_path / "key"
    path.write_text(f"# ring\n{k1}\n\n{k2}\n")
    keys, ephemeral = load_keys(path)
    assert not ephemeral
    assert keys == [base64.b64decode(k1), base64.b64decode(k2)]


def test_no_file_means_an_ephemeral_key() -> None:
    keys, ephemeral = load_keys(None)
    assert ephemeral and len(keys[0]) == 32


@pytest.mark.parametrize("text", ["", "# only a comment\n", "not base64!!\n", "aGVsbG8=\n"])
def test_bad_key_files_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(KeyFileError):
        parse_keys(text)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        load_keys(tmp_path / "nope")
