"""failure_reason: every google-genai/websockets failure becomes words the transcript can carry."""

from __future__ import annotations

import ssl

import pydantic
import pytest
import websockets
from google.genai import errors as genai_errors
from websockets.datastructures import Headers
from websockets.frames import Close
from websockets.http11 import Response

from orchestrator.brains.gemini import failure_reason


def _closed(code: int, reason: str) -> websockets.ConnectionClosed:
    return websockets.ConnectionClosedError(Close(code, reason), None)


def _status(code: int) -> websockets.InvalidStatus:
    return websockets.InvalidStatus(Response(code, "x", Headers(), b""))


def _validation_error() -> pydantic.ValidationError:
    class Shape(pydantic.BaseModel):
        n: int

    try:
        Shape.model_validate({"n": "not a number"})
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), "did not answer in time"),
        (genai_errors.APIError(1011, "RESOURCE_EXHAUSTED: You exceeded your current quota."), "quota exceeded"),
        (genai_errors.ClientError(429, {"error": {"message": "Too many requests"}}), "quota exceeded"),
        (genai_errors.APIError(1008, "API key not valid."), "closed the session (1008"),
        (genai_errors.ServerError(1011, "Internal error"), "closed the session (1011"),
        (_status(503), "refused the connection (HTTP 503)"),
        (_status(429), "quota exceeded (HTTP 429)"),
        (_closed(1006, ""), "connection to Gemini Live lost (1006)"),
        (websockets.InvalidHandshake("bad"), "handshake with Gemini Live failed"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "TLS with Gemini Live failed"),
        (ConnectionRefusedError(111, "Connection refused"), "cannot reach Gemini Live (Connection refused)"),
        (ValueError("Failed to parse response: b'{'"), "malformed message"),
        (TypeError("'<=' not supported"), "malformed message"),
        (_validation_error(), "malformed message"),
        (RuntimeError("boom"), "adapter error (RuntimeError)"),
    ],
)
def test_gemini_failure_reason_maps_every_error(exc: BaseException, expected: str):
    """Each kind of failure reads as a specific, human sentence."""
    assert expected in failure_reason(exc)
