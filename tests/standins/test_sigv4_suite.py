"""The STS stand-in's SigV4 verifier against AWS's published SigV4 test suite cases."""

from __future__ import annotations

from pool.standins.sigv4 import compute_signature, encode_query, parse_authorization

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # the suite's published example key
HEADERS = {"host": "example.amazonaws.com", "x-amz-date": "20150830T123600Z"}


def _signature(path: str, authorization: str) -> str:
    auth = parse_authorization(authorization)
    return compute_signature(
        access_key_id="AKIDEXAMPLE", secret_access_key=SECRET, auth=auth,
        timestamp=HEADERS["x-amz-date"], method="GET", path=path, headers=HEADERS, body=b"",
    )  # fmt: skip


def _authorization(signature: str) -> str:
    return (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_get_vanilla_utf8_query() -> None:
    """get-vanilla-utf8-query: a raw UTF-8 query is percent-encoded before canonicalisation."""
    expected = "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"
    assert _signature("/?\u1234=bar", _authorization(expected)) == expected


def test_get_vanilla_query_already_encoded_is_unchanged() -> None:
    """An already-encoded query signs the same as its raw form (no double encoding)."""
    expected = "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"
    assert _signature("/?%E1%88%B4=bar", _authorization(expected)) == expected
    assert encode_query("/?a=b&c=%2F") == "/?a=b&c=%2F"
    assert encode_query("/") == "/"


def test_get_vanilla() -> None:
    """get-vanilla: the plain case still verifies."""
    expected = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    assert _signature("/", _authorization(expected)) == expected
