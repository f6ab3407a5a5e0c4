"""Sautikit's wire and nothing else: webhook bodies, voice XML, signatures, stream metadata.

Nothing here knows of flows or calls. The pure parts live in one module each and are gathered here:

    webhook    liberal form/JSON parsing of the voice webhook -> CallStart
    xml        Say / Stream / Dial / Hangup rendering, and parsing back for the simulator
    signing    stream tokens we mint, webhook signatures Sautikit sends
    metadata   the media socket's first text frame -> StreamMetadata
"""

from __future__ import annotations

from orchestrator.telephony.metadata import StreamMetadata, parse_metadata
from orchestrator.telephony.signing import (
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
    "CallStart",
    "DialVerb",
    "HangupVerb",
    "OtherVerb",
    "SayVerb",
    "StreamMetadata",
    "StreamSpec",
    "StreamTrack",
    "Verb",
    "make_stream_token",
    "normalise_phone",
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
