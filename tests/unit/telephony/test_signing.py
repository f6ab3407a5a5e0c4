"""Stream tokens and webhook signatures: what passes, and the reason given for what does not."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.errors import SignatureError
from orchestrator.telephony import (
    PLAIN_SIGNATURE_REPLAY_S,
    make_stream_token,
    sign_webhook,
    stream_url,
    verify_stream_token,
    verify_webhook_signature,
)

SECRET = b"whsec_test_secret"
BODY = b"CallSid=HD_1&From=%2B254712345678"
NOW = 1_760_000_000.0


def test_stream_token_verifies_for_its_call():
    """A fresh token verifies for the call it was minted for."""
    token = make_stream_token(SECRET, "HD_1", now=NOW)
    verify_stream_token(SECRET, "HD_1", token, now=NOW + 299)


def test_stream_token_is_url_safe_and_carries_its_expiry():
    """The token is `<expiry>.<64 hex>`, safe in a query string without escaping."""
    token = make_stream_token(SECRET, "HD_1", now=NOW, ttl=60)
    expiry, _, mac = token.partition(".")
    assert (int(expiry), len(mac)) == (int(NOW) + 60, 64)
    assert set(mac) <= set("0123456789abcdef")


def test_stream_token_expires():
    """After its ttl the token is refused as expired."""
    token = make_stream_token(SECRET, "HD_1", now=NOW, ttl=300)
    with pytest.raises(SignatureError, match="expired") as info:
        verify_stream_token(SECRET, "HD_1", token, now=NOW + 301)
    assert info.value.status == 403


def test_stream_token_refuses_another_call():
    """A token for one call does not open another call's stream."""
    token = make_stream_token(SECRET, "HD_1", now=NOW)
    with pytest.raises(SignatureError, match="does not match this call"):
        verify_stream_token(SECRET, "HD_2", token, now=NOW)


def test_stream_token_refuses_another_secret():
    """A token minted with another secret fails."""
    token = make_stream_token(b"other", "HD_1", now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify_stream_token(SECRET, "HD_1", token, now=NOW)


def test_stream_token_refuses_an_extended_expiry():
    """Pushing the expiry forward breaks the mac, so a token cannot be kept alive by editing it."""
    expiry, _, mac = make_stream_token(SECRET, "HD_1", now=NOW).partition(".")
    with pytest.raises(SignatureError, match="does not match"):
        verify_stream_token(SECRET, "HD_1", f"{int(expiry) + 3600}.{mac}", now=NOW)


def test_stream_token_refuses_a_tampered_mac():
    """Changing one hex digit of the mac fails."""
    token = make_stream_token(SECRET, "HD_1", now=NOW)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    with pytest.raises(SignatureError, match="does not match"):
        verify_stream_token(SECRET, "HD_1", tampered, now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "abc", "123", "123.", ".abc", "12x.ab", "1.2.3", "123." + "g" * 64, "123." + "é" * 64],
)
def test_stream_token_refuses_malformed_tokens(token):
    """Anything not shaped `<digits>.<64 hex>` is malformed."""
    with pytest.raises(SignatureError, match="malformed stream token"):
        verify_stream_token(SECRET, "HD_1", token, now=NOW)


def test_make_stream_token_refuses_an_empty_secret():
    """An empty secret would make every token forgeable."""
    with pytest.raises(ValueError, match="secret"):
        make_stream_token(b"", "HD_1", now=NOW)


@pytest.mark.parametrize(
    ("base", "expected_prefix"),
    [
        ("https://agent.example.com", "wss://agent.example.com/audio?"),
        ("http://127.0.0.1:8080/", "ws://127.0.0.1:8080/audio?"),
        ("https://agent.example.com/voice-app/", "wss://agent.example.com/voice-app/audio?"),
        ("wss://agent.example.com", "wss://agent.example.com/audio?"),
    ],
)
def test_stream_url_maps_http_to_ws_and_keeps_the_base_path(base, expected_prefix):
    """https becomes wss, http becomes ws, and a base path is kept."""
    assert stream_url(base, "/audio", "HD_1", "1.ab").startswith(expected_prefix)


def test_stream_url_encodes_the_query():
    """The call id and token are url-encoded and come back intact."""
    url = stream_url("https://h", "audio", "HD_1&x=2 +", "99.ff")
    assert parse_qs(urlsplit(url).query) == {"call_sid": ["HD_1&x=2 +"], "token": ["99.ff"]}


@pytest.mark.parametrize("base", ["ftp://h", "agent.example.com", "https://h/?a=1", "https://h/#x"])
def test_stream_url_refuses_an_unusable_base(base):
    """Only an absolute http(s)/ws(s) base without query or fragment makes a stream URL."""
    with pytest.raises(ValueError, match="public base"):
        stream_url(base, "/audio", "HD_1", "1.ab")


def test_webhook_signature_verifies_what_sign_webhook_made():
    """The t/v1 form produced by sign_webhook verifies within the window."""
    header = sign_webhook(SECRET, BODY, now=NOW)
    verify_webhook_signature(SECRET, BODY, header, now=NOW + 120)


def test_webhook_signature_matches_the_documented_formula():
    """v1 is HMAC-SHA256(secret, body + "." + t), as Sautikit documents it."""
    v1 = hmac.new(SECRET, BODY + b"." + str(int(NOW)).encode(), hashlib.sha256).hexdigest()
    assert sign_webhook(SECRET, BODY, now=NOW) == f"t={int(NOW)},v1={v1}"


def test_webhook_signature_accepts_several_v1_values_and_spaces():
    """During secret rotation any listed v1 may match; spaces around parts are tolerated."""
    good = sign_webhook(SECRET, BODY, now=NOW).split("v1=")[1]
    header = f"t={int(NOW)}, v1={'0' * 64}, v0=legacy, v1={good.upper()}"
    verify_webhook_signature(SECRET, BODY, header, now=NOW)


def test_webhook_signature_refuses_a_stale_timestamp():
    """A signature older than the tolerance is refused as stale."""
    header = sign_webhook(SECRET, BODY, now=NOW)
    with pytest.raises(SignatureError, match="stale"):
        verify_webhook_signature(SECRET, BODY, header, now=NOW + 301)


def test_webhook_signature_refuses_a_future_timestamp():
    """A timestamp beyond the tolerance ahead of our clock is refused."""
    header = sign_webhook(SECRET, BODY, now=NOW + 301)
    with pytest.raises(SignatureError, match="future"):
        verify_webhook_signature(SECRET, BODY, header, now=NOW)


def test_webhook_signature_refuses_a_replay_with_another_body():
    """A captured header replayed on a different body fails."""
    header = sign_webhook(SECRET, BODY, now=NOW)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_webhook_signature(SECRET, BODY + b"&Digits=1", header, now=NOW)


def test_webhook_signature_refuses_a_moved_timestamp():
    """Changing t without re-signing fails, because t is inside the mac."""
    header = sign_webhook(SECRET, BODY, now=NOW).replace(f"t={int(NOW)}", f"t={int(NOW) + 1}")
    with pytest.raises(SignatureError, match="mismatch"):
        verify_webhook_signature(SECRET, BODY, header, now=NOW)


def test_webhook_signature_refuses_the_wrong_secret():
    """A header signed with another secret fails."""
    header = sign_webhook(b"whsec_other", BODY, now=NOW)
    with pytest.raises(SignatureError, match="mismatch"):
        verify_webhook_signature(SECRET, BODY, header, now=NOW)


@pytest.mark.parametrize("prefix", ["", "sha256=", "SHA256="])
def test_webhook_signature_refuses_a_plain_hex_hmac_by_default(prefix):
    """The plain form, hex HMAC-SHA256 of the body, is refused unless explicitly allowed."""
    digest = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="plain webhook signature refused"):
        verify_webhook_signature(SECRET, BODY, prefix + digest, now=NOW)


def test_webhook_signature_refuses_a_timestamped_v1_replayed_as_a_plain_signature():
    """Regression: v1 over `body.t` is a valid plain signature of the body `body.t`; it must not verify.

    With the plain form accepted, a captured signed request replayed as body + "." + t with the bare v1
    as its header was accepted at any age (28 hours, measured), and could start a call.
    """
    header = sign_webhook(SECRET, BODY, now=NOW - 28 * 3600)
    v1 = header.split("v1=")[1]
    replayed_body = BODY + b"." + str(int(NOW - 28 * 3600)).encode()
    with pytest.raises(SignatureError, match="plain webhook signature refused"):
        verify_webhook_signature(SECRET, replayed_body, v1, now=NOW)


@pytest.mark.parametrize("prefix", ["", "sha256=", "SHA256="])
def test_webhook_signature_accepts_a_plain_hex_hmac_when_allowed(prefix):
    """With `allow_plain`, the plain form verifies and is remembered for a day against replays."""
    digest = hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()
    accepted = verify_webhook_signature(SECRET, BODY, prefix + digest, now=NOW, allow_plain=True)
    assert (accepted.mac, accepted.expires_at) == (digest, NOW + PLAIN_SIGNATURE_REPLAY_S)


def test_webhook_signature_refuses_a_plain_hex_hmac_of_another_body():
    """The plain form, when allowed, still binds the body."""
    digest = hmac.new(SECRET, b"other", hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="mismatch"):
        verify_webhook_signature(SECRET, BODY, digest, now=NOW, allow_plain=True)


def test_webhook_signature_accepted_timestamped_form_expires_with_the_window():
    """An accepted t/v1 signature says when it goes stale, so a replay cache keeps it that long."""
    header = sign_webhook(SECRET, BODY, now=NOW)
    accepted = verify_webhook_signature(SECRET, BODY, header, now=NOW + 10, tolerance=300)
    assert accepted.mac == header.split("v1=")[1]
    assert accepted.expires_at == int(NOW) + 300


@pytest.mark.parametrize("header", [None, "", "   "])
def test_webhook_signature_refuses_a_missing_header(header):
    """No header is refused as missing."""
    with pytest.raises(SignatureError, match="missing"):
        verify_webhook_signature(SECRET, BODY, header, now=NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("nonsense", "malformed"),
        ("sha256=xyz", "malformed"),
        ("a" * 63, "malformed"),
        (f"v1={'a' * 64}", "no valid t="),
        (f"t=soon,v1={'a' * 64}", "no valid t="),
        (f"t={int(NOW)}", "no v1="),
        (f"t={int(NOW)},garbage", "malformed"),
        (f"t={int(NOW)},v1=short", "mismatch"),
    ],
)
def test_webhook_signature_refuses_malformed_headers(header, reason):
    """Headers that are neither form are refused with a reason naming the problem."""
    with pytest.raises(SignatureError, match=reason):
        verify_webhook_signature(SECRET, BODY, header, now=NOW)
