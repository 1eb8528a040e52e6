from node.internal_auth import MAX_SKEW_MS, sign, verify

K1, K2, WRONG = b"1" * 32, b"2" * 32, b"x" * 32


def test_signed_request_verifies_with_any_installed_key() -> None:
    header = sign(K2, 1_000_000, "POST", "/internal/servos", b"{}")
    assert verify([K1, K2], header, 1_000_500, "POST", "/internal/servos", b"{}") is None


def test_wrong_key_tampering_staleness_and_garbage_are_refused() -> None:
    now = 5_000_000
    good = sign(K1, now, "POST", "/internal/servos", b"{}")
    assert verify(
        [K1],
        sign(WRONG, now, "POST", "/internal/servos", b"{}"),
        now,
        "POST",
        "/internal/servos",
        b"{}",
    )
    assert verify([K1], good, now, "POST", "/internal/servos", b'{"x":1}')
    assert verify([K1], good, now, "POST", "/internal/drain", b"{}")
    assert verify([K1], good, now + MAX_SKEW_MS + 1, "POST", "/internal/servos", b"{}")
    for bad in (None, "", "abc", "12:", ":ff", "x:y"):
        assert verify([K1], bad, now, "POST", "/internal/servos", b"{}")
