"""The media socket's first text frame: parsed defensively, failing only on non-objects."""

from __future__ import annotations

import json

import pytest

from orchestrator.errors import StreamError
from orchestrator.telephony import parse_metadata


def test_parse_metadata_reads_a_flat_frame():
    """A flat frame with the usual keys fills every field."""
    meta = parse_metadata(
        json.dumps(
            {
                "callSid": "HD_1",
                "streamSid": "MZ_1",
                "from": "0712345678",
                "to": "+254209990000",
                "sampleRate": 16000,
                "mixType": "mono",
                "headers": {"call_sid": "HD_1"},
            }
        )
    )
    assert (meta.call_sid, meta.stream_sid, meta.caller, meta.callee) == (
        "HD_1", "MZ_1", "+254712345678", "+254209990000",
    )
    assert (meta.sample_rate, meta.channels, meta.headers) == (16000, 1, {"call_sid": "HD_1"})


@pytest.mark.parametrize("key", ["callSid", "sessionId", "call_sid", "CallSid"])
def test_parse_metadata_accepts_every_call_id_spelling(key):
    """Each spelling of the call id is read."""
    assert parse_metadata(json.dumps({key: "HD_7"})).call_sid == "HD_7"


def test_parse_metadata_reads_a_frame_nested_under_metadata():
    """Fields under "metadata" are read, with top-level fields filling gaps."""
    meta = parse_metadata(
        json.dumps({"event": "start", "streamSid": "MZ_2", "metadata": {"callSid": "HD_2"}})
    )
    assert (meta.call_sid, meta.stream_sid) == ("HD_2", "MZ_2")
    assert meta.raw == {"event": "start", "streamSid": "MZ_2", "metadata": {"callSid": "HD_2"}}


def test_parse_metadata_prefers_the_nested_object():
    """When both levels name the call, the nested metadata object wins."""
    meta = parse_metadata(json.dumps({"callSid": "outer", "metadata": {"callSid": "inner"}}))
    assert meta.call_sid == "inner"


@pytest.mark.parametrize(
    ("mix_type", "channels"), [("stereo", 2), ("STEREO", 2), ("mono", 1), ("mixed", 1), (None, 1)]
)
def test_parse_metadata_reads_channels_from_mix_type(mix_type, channels):
    """Only a stereo mix type means two interleaved channels."""
    frame = {"callSid": "HD_1"} if mix_type is None else {"callSid": "HD_1", "mixType": mix_type}
    assert parse_metadata(json.dumps(frame)).channels == channels


def test_parse_metadata_reads_headers_given_as_a_json_string():
    """headerMetadata may come back as a JSON string rather than an object."""
    meta = parse_metadata(json.dumps({"headers": json.dumps({"call_sid": "HD_1", "n": 2})}))
    assert meta.headers == {"call_sid": "HD_1", "n": "2"}


@pytest.mark.parametrize("headers", ["not json", "[1, 2]", 42, None, ["a"]])
def test_parse_metadata_ignores_unusable_headers(headers):
    """Headers that are not an object (or a JSON string of one) read as empty."""
    assert parse_metadata(json.dumps({"callSid": "HD_1", "headers": headers})).headers == {}


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(8000, 8000), ("16000", 16000), (True, None), (-1, None), ("fast", None), (16000.5, None),
     ("9" * 5000, None), (None, None)],
)
def test_parse_metadata_reads_a_sample_rate_or_none(rate, expected):
    """A positive integer (or its digits) is a rate; anything else reads as None."""
    assert parse_metadata(json.dumps({"sampleRate": rate})).sample_rate == expected


def test_parse_metadata_turns_wrong_types_into_none():
    """Fields of the wrong type are ignored, never a crash."""
    meta = parse_metadata(
        json.dumps({"callSid": 12, "streamSid": ["x"], "from": {"n": 1}, "to": False, "mixType": 2})
    )
    assert (meta.call_sid, meta.stream_sid, meta.caller, meta.callee, meta.channels) == (
        None, None, None, None, 1,
    )


def test_parse_metadata_accepts_an_empty_object():
    """Nothing is required: the stream URL already names the call."""
    meta = parse_metadata("{}")
    assert (meta.call_sid, meta.sample_rate, meta.headers, meta.raw) == (None, None, {}, {})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not valid JSON"),
        ("{callSid: HD_1}", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
        ("[]", "must be a JSON object, got list"),
        ('"HD_1"', "must be a JSON object, got str"),
        ("null", "must be a JSON object, got NoneType"),
    ],
)
def test_parse_metadata_rejects_garbage(text, reason):
    """A frame that is not a JSON object is a StreamError with a reason and close code 1003."""
    with pytest.raises(StreamError, match=reason) as info:
        parse_metadata(text)
    assert info.value.close_code == 1003
