"""Sautikit voice XML: the verbs we answer a webhook with, rendered and parsed as pure functions.

Rendering goes through `xml.etree.ElementTree`, never string building, so text and attribute
values are always escaped; attribute order is fixed so snapshot tests stay stable.
`parse_response` is the inverse, used by the simulator (a fake Sautikit) to execute what we sent;
it is lenient about tag and attribute case, like a platform would be, and strict about values it
cannot act on.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, get_args

__all__ = [
    "DialVerb",
    "HangupVerb",
    "OtherVerb",
    "SayVerb",
    "StreamSpec",
    "StreamTrack",
    "Verb",
    "parse_response",
    "render_empty_response",
    "render_response",
]

StreamTrack: TypeAlias = Literal["inbound_track", "outbound_track", "both_tracks"]
_TRACKS: Mapping[str, StreamTrack] = {track: track for track in get_args(StreamTrack)}
_DEFAULT_STATUS_EVENTS = ("stream-started", "stream-stopped", "stream-error")
_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# Characters XML 1.0 cannot carry, not even escaped; spoken text from order data may hold them.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamSpec:
    """The `<Stream>` verb: fork the call's audio to our WebSocket.

    `connect=True` is what keeps the caller's leg up for two-way audio (reference/sautikit.md).
    """

    url: str
    name: str = "order-status"
    track: StreamTrack = "inbound_track"
    sample_rate: int = 16000  # outputSamplingRate: the audio Sautikit sends us
    bidirectional_rate: int = 16000  # bidirectionalSamplingRate: the audio we send back
    status_callback: str | None = None
    status_events: tuple[str, ...] = _DEFAULT_STATUS_EVENTS
    connect: bool = True
    header_metadata: Mapping[str, str] | None = None  # JSON; comes back as the socket's `headers`

    def __post_init__(self) -> None:
        if self.track not in _TRACKS:
            raise ValueError(f"track must be one of {sorted(_TRACKS)}, got {self.track!r}")
        if self.sample_rate <= 0 or self.bidirectional_rate <= 0:
            raise ValueError("sampling rates must be positive")
        if any(not event or any(c.isspace() for c in event) for event in self.status_events):
            raise ValueError("status events are space-separated on the wire: no spaces inside")


@dataclass(frozen=True, slots=True, kw_only=True)
class SayVerb:
    """The `<Say>` verb: text to speech, e.g. a greeting before the stream opens."""

    text: str
    voice: str | None = None
    language: str | None = None  # BCP-47: en-KE, sw-KE, en-US


@dataclass(frozen=True, slots=True, kw_only=True)
class DialVerb:
    """The `<Dial>` verb: hand the caller to a person; `caller_id` must be a workspace number."""

    number: str
    caller_id: str | None = None
    timeout: int | None = None  # seconds
    record: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class HangupVerb:
    """The `<Hangup/>` verb."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherVerb:
    """A verb `parse_response` does not model (Play, Redirect, ...), kept for the simulator."""

    tag: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    text: str | None = None


Verb: TypeAlias = SayVerb | StreamSpec | DialVerb | HangupVerb | OtherVerb


def render_response(*verbs: SayVerb | StreamSpec | DialVerb | HangupVerb) -> str:
    """Render verbs, in order, inside `<Response>`.

    >>> render_response(SayVerb(text="Karibu & welcome"), HangupVerb())[38:]
    '<Response><Say>Karibu &amp; welcome</Say><Hangup/></Response>'
    """
    root = ET.Element("Response")
    for verb in verbs:
        root.append(_render_verb(verb))
    return _serialise(root)


def render_empty_response() -> str:
    """The answer to a lifecycle re-POST: do nothing more with this call."""
    return _serialise(ET.Element("Response"))


def parse_response(xml_text: str) -> list[Verb]:
    """Parse voice XML into verbs; ValueError on malformed XML or a root other than Response."""
    if "<!DOCTYPE" in xml_text.upper():
        raise ValueError("voice XML must not carry a DOCTYPE")  # no entity games with the parser
    try:
        # Parsing our own replies (simulator side) with DOCTYPEs refused above.
        root = ET.fromstring(xml_text)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"malformed voice XML: {exc}") from exc
    if _local(root.tag).lower() != "response":
        raise ValueError(f"voice XML root must be <Response>, got <{_local(root.tag)}>")
    return [_parse_verb(element) for element in root]


def _render_verb(verb: SayVerb | StreamSpec | DialVerb | HangupVerb) -> ET.Element:
    match verb:
        case SayVerb():
            say = _element("Say", voice=verb.voice, language=verb.language)
            say.text = _clean(verb.text)
            return say
        case StreamSpec():
            return _element(
                "Stream",
                name=verb.name,
                url=verb.url,
                track=verb.track,
                outputSamplingRate=str(verb.sample_rate),
                bidirectionalSamplingRate=str(verb.bidirectional_rate),
                statusCallback=verb.status_callback,
                statusEvents=" ".join(verb.status_events) if verb.status_callback else None,
                connect="true" if verb.connect else None,
                headerMetadata=_encode_metadata(verb.header_metadata),
            )
        case DialVerb():
            dial = _element(
                "Dial",
                callerId=verb.caller_id,
                timeout=None if verb.timeout is None else str(verb.timeout),
                record="true" if verb.record else None,
            )
            dial.text = _clean(verb.number)
            return dial
        case HangupVerb():
            return ET.Element("Hangup")
    raise TypeError(f"not a renderable verb: {verb!r}")


def _element(tag: str, **attributes: str | None) -> ET.Element:
    # Keyword order is insertion order, and ElementTree keeps it: the wire order is the call order.
    return ET.Element(tag, {k: _clean(v) for k, v in attributes.items() if v is not None})


def _encode_metadata(metadata: Mapping[str, str] | None) -> str | None:
    if not metadata:
        return None
    return json.dumps(dict(metadata), separators=(",", ":"), ensure_ascii=False)


def _clean(text: str) -> str:
    return _NOT_XML_CHAR.sub("", text)


def _serialise(root: ET.Element) -> str:
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    # ElementTree writes empty elements as "<Tag />"; " />" cannot occur inside escaped text or
    # attribute values ('>' is escaped there), so this only tightens element ends to "<Tag/>".
    return _DECLARATION + body.replace(" />", "/>")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _parse_verb(element: ET.Element) -> Verb:
    tag = _local(element.tag)
    attributes = {_local(k).lower(): v for k, v in element.attrib.items()}
    text = (element.text or "").strip()
    match tag.lower():
        case "say":
            return SayVerb(
                text=text, voice=attributes.get("voice"), language=attributes.get("language")
            )
        case "stream":
            return _parse_stream(attributes)
        case "dial":
            return _parse_dial(element, attributes, text)
        case "hangup":
            return HangupVerb()
    return OtherVerb(tag=tag, attributes=dict(element.attrib), text=text or None)


def _parse_stream(attributes: Mapping[str, str]) -> StreamSpec:
    url = attributes.get("url")
    if not url:
        raise ValueError("<Stream> needs a url")
    given = attributes.get("track", "inbound_track")
    track = _TRACKS.get(given)
    if track is None:
        raise ValueError(f"<Stream> track must be one of {sorted(_TRACKS)}, got {given!r}")
    events = attributes.get("statusevents")
    metadata = attributes.get("headermetadata")
    return StreamSpec(
        url=url,
        name=attributes.get("name", "order-status"),
        track=track,
        sample_rate=_parse_int(attributes, "outputsamplingrate", 16000),
        bidirectional_rate=_parse_int(attributes, "bidirectionalsamplingrate", 16000),
        status_callback=attributes.get("statuscallback"),
        status_events=_DEFAULT_STATUS_EVENTS if events is None else tuple(events.split()),
        connect=_is_true(attributes.get("connect")),
        header_metadata=None if metadata is None else _decode_metadata(metadata),
    )


def _parse_dial(element: ET.Element, attributes: Mapping[str, str], text: str) -> DialVerb:
    number = text or next(
        ((child.text or "").strip() for child in element if _local(child.tag).lower() == "number"),
        "",
    )
    if not number:
        raise ValueError("<Dial> needs a number")
    timeout = attributes.get("timeout")
    return DialVerb(
        number=number,
        caller_id=attributes.get("callerid"),
        timeout=None if timeout is None else _parse_int(attributes, "timeout", 0),
        record=_is_true(attributes.get("record")),
    )


def _parse_int(attributes: Mapping[str, str], name: str, default: int) -> int:
    value = attributes.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"attribute {name} must be an integer, got {value!r}") from None


def _is_true(value: str | None) -> bool:
    return value is not None and value.strip().lower() == "true"


def _decode_metadata(text: str) -> dict[str, str]:
    try:
        decoded: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"headerMetadata is not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise ValueError("headerMetadata must be a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in decoded.items()}
