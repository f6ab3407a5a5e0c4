"""The outbound wire: signed callback URLs, stable idempotency keys, liberal directions and statuses."""

from urllib.parse import parse_qsl, urlsplit

import pytest

from orchestrator.telephony.outbound import (
    OutboundRequest,
    idempotency_key,
    is_outbound,
    not_answered,
    outbound_callback_url,
    read_outbound_query,
)

REQUEST = OutboundRequest(order="DX1042", to="+254712345678", attempt=2)


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_outbound_callback_url_round_trips_with_the_same_secret() -> None:
    """The URL carries order, number and attempt; the service reads them back with its secret."""
    url = outbound_callback_url("https://agent.example.test/voice", REQUEST, b"secret")
    assert read_outbound_query(_query(url), b"secret") == REQUEST


@pytest.mark.parametrize(
    "change",
    [{"outbound": "DX9999"}, {"attempt": "3"}, {"to": "+254700000000"}, {"sig": "0" * 32}],
)
def test_outbound_query_tampered_or_signed_with_another_secret_is_refused(change) -> None:
    """Any edited field, or another service's secret, gives no outbound request."""
    query = _query(outbound_callback_url("https://a.test/voice", REQUEST, b"secret"))
    assert read_outbound_query({**query, **change}, b"secret") is None
    assert read_outbound_query(query, b"other") is None


def test_idempotency_key_is_stable_per_row_and_differs_per_attempt() -> None:
    """The same order and number give the same key every run; a retry gets its own."""
    first = OutboundRequest(order="DX1042", to="+254712345678")
    assert idempotency_key(first, flow="f") == idempotency_key(first, flow="f")
    assert idempotency_key(first, flow="f") != idempotency_key(REQUEST, flow="f")
    assert idempotency_key(first, flow="f") != idempotency_key(first, flow="g")


@pytest.mark.parametrize(
    ("direction", "outbound"),
    [("outbound", True), ("Outbound-API", True), ("outbound_dial", True), ("inbound", False),
     (None, False), ("", False)],
)
def test_is_outbound_accepts_every_spelling(direction, outbound) -> None:
    """Any direction starting with "out" is outbound."""
    assert is_outbound(direction) is outbound


@pytest.mark.parametrize(
    ("state", "reason"),
    [("NoAnswer", "no_answer"), ("no-answer", "no_answer"), ("no_answer", "no_answer"),
     ("Busy", "busy"), ("failed", "failed"), ("Cancelled", "canceled"), ("completed", None),
     ("answered", None), (None, None)],
)
def test_not_answered_reads_final_states_liberally(state, reason) -> None:
    """Final states of an unanswered call, however spelt; anything else is not one."""
    assert not_answered(state) == reason
