"""Sautikit's wire and nothing else: webhook bodies, voice XML, signatures, stream metadata.

Nothing here knows of flows or calls. The pure parts live in one module each and are gathered here:

    call_id    the one checked call-id type, made at the edge
    webhook    liberal form/JSON parsing of the voice webhook -> CallStart
    xml        Say / Stream / Dial / Hangup rendering, and parsing back for the simulator
    signing    stream tokens we mint, webhook signatures Sautikit sends
    replay     what was already seen (accepted signatures, call ids): the ReplayCache plug point
    metadata   the media socket's first text frame -> StreamMetadata
"""

from __future__ import annotations

from orchestrator.telephony.call_id import CALL_ID_MAX_LENGTH, CallId, is_call_id, parse_call_id
from orchestrator.telephony.metadata import StreamMetadata, parse_metadata
from orchestrator.telephony.replay import MemoryReplayCache, ReplayCache
from orchestrator.telephony.signing import (
    PLAIN_SIGNATURE_REPLAY_S,
    AcceptedSignature,
    make_stream_token,
    sign_webhook,
    stream_url,
    verify_stream_token,
    verify_webhook_signature,
)
from orchestrator.telephony.webhook import (
    CallStart,
    normalise_phone,
    parse_webhook,
    parse_webhook_body,
    parse_webhook_fields,
)
from orchestrator.telephony.xml import (
    DialVerb,
    HangupVerb,
    OtherVerb,
    SayVerb,
    StreamSpec,
    StreamTrack,
    Verb,
    parse_response,
    render_empty_response,
    render_response,
)

__all__ = [
    "AcceptedSignature",
    "CALL_ID_MAX_LENGTH",
    "CallId",
    "CallStart",
    "DialVerb",
    "HangupVerb",
    "MemoryReplayCache",
    "OtherVerb",
    "PLAIN_SIGNATURE_REPLAY_S",
    "ReplayCache",
    "SayVerb",
    "StreamMetadata",
    "StreamSpec",
    "StreamTrack",
    "Verb",
    "is_call_id",
    "make_stream_token",
    "normalise_phone",
    "parse_call_id",
    "parse_metadata",
    "parse_response",
    "parse_webhook",
    "parse_webhook_body",
    "parse_webhook_fields",
    "render_empty_response",
    "render_response",
    "sign_webhook",
    "stream_url",
    "verify_stream_token",
    "verify_webhook_signature",
]
