"""Voice XML: golden renderings, escaping, and parse_response as the inverse of render_response."""

from __future__ import annotations

import pytest

from orchestrator.telephony import (
    DialVerb,
    HangupVerb,
    OtherVerb,
    SayVerb,
    StreamSpec,
    parse_response,
    render_empty_response,
    render_response,
)

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def test_render_empty_response_is_a_bare_response():
    """A lifecycle re-POST is answered with an empty Response element."""
    assert render_empty_response() == DECLARATION + "<Response/>"


def test_render_response_stream_with_defaults():
    """A default Stream carries connect="true" and both sampling rates, in a fixed order."""
    xml = render_response(StreamSpec(url="wss://agent.example.com/audio?call_sid=HD_1&token=9.ab"))
    assert xml == (
        DECLARATION + "<Response>"
        '<Stream name="order-status"'
        ' url="wss://agent.example.com/audio?call_sid=HD_1&amp;token=9.ab"'
        ' track="inbound_track" outputSamplingRate="16000" bidirectionalSamplingRate="16000"'
        ' connect="true"/>'
        "</Response>"
    )


def test_render_response_stream_with_every_attribute():
    """Status callback, events, and header metadata (JSON, quotes escaped) follow the rates."""
    xml = render_response(
        StreamSpec(
            url="wss://h/audio",
            name="ws",
            track="both_tracks",
            sample_rate=8000,
            bidirectional_rate=24000,
            status_callback="https://h/stream-status?a=1&b=<2>",
            status_events=("stream-started", "stream-error"),
            header_metadata={"call_sid": "HD_1", "note": 'say "hi"'},
        )
    )
    assert xml == (
        DECLARATION + "<Response>"
        '<Stream name="ws" url="wss://h/audio" track="both_tracks" outputSamplingRate="8000"'
        ' bidirectionalSamplingRate="24000"'
        ' statusCallback="https://h/stream-status?a=1&amp;b=&lt;2&gt;"'
        ' statusEvents="stream-started stream-error" connect="true"'
        ' headerMetadata="{&quot;call_sid&quot;:&quot;HD_1&quot;,'
        '&quot;note&quot;:&quot;say \\&quot;hi\\&quot;&quot;}"/>'
        "</Response>"
    )


def test_render_response_stream_without_connect_omits_it():
    """connect=False leaves the attribute out rather than sending "false"."""
    xml = render_response(StreamSpec(url="wss://h/a", connect=False))
    assert "connect" not in xml


def test_render_response_say_escapes_text_and_attributes():
    """&, <, > in spoken text and a quote in an attribute are escaped, never concatenated raw."""
    xml = render_response(
        SayVerb(text='Order <A&B> is "out"', voice='Jane "K"', language="en-KE")
    )
    assert xml == (
        DECLARATION + "<Response>"
        '<Say voice="Jane &quot;K&quot;" language="en-KE">Order &lt;A&amp;B&gt; is "out"</Say>'
        "</Response>"
    )


def test_render_response_say_drops_characters_xml_cannot_carry():
    """A control character from order data would make the XML invalid, so it is dropped."""
    xml = render_response(SayVerb(text="Parcel\x00 \x1bready"))
    assert xml == DECLARATION + "<Response><Say>Parcel ready</Say></Response>"


def test_render_response_dial_and_hangup_in_order():
    """Verbs render in the order given; Dial carries its number as text."""
    xml = render_response(
        SayVerb(text="Connecting you."),
        DialVerb(number="+254711000111", caller_id="+254709000000", timeout=25, record=True),
        HangupVerb(),
    )
    assert xml == (
        DECLARATION + "<Response>"
        "<Say>Connecting you.</Say>"
        '<Dial callerId="+254709000000" timeout="25" record="true">+254711000111</Dial>'
        "<Hangup/>"
        "</Response>"
    )


def test_render_response_plain_dial_has_no_attributes():
    """Unset Dial options are left out."""
    assert render_response(DialVerb(number="+254711000111")) == (
        DECLARATION + "<Response><Dial>+254711000111</Dial></Response>"
    )


@pytest.mark.parametrize(
    "verbs",
    [
        (),
        (SayVerb(text="Karibu! <Orders> & \"more\"", voice="en-KE-Wavenet", language="en-KE"),),
        (
            SayVerb(text="Hello"),
            StreamSpec(
                url="wss://h/audio?call_sid=HD_1&token=1.ff",
                status_callback="https://h/s?x=1&y=2",
                header_metadata={"k": 'v"&<'},
            ),
        ),
        (StreamSpec(url="wss://h/a", track="both_tracks", sample_rate=8000, connect=False),),
        (DialVerb(number="+254711000111", caller_id="+254709000000", timeout=30, record=True),
         HangupVerb()),
        (DialVerb(number="0711000111"),),
    ],
)
def test_parse_response_inverts_render_response(verbs):
    """Parsing what we rendered gives back the same verbs."""
    assert parse_response(render_response(*verbs)) == list(verbs)


def test_parse_response_is_lenient_about_case():
    """Tag and attribute names are matched without regard to case."""
    verbs = parse_response(
        '<response><STREAM URL="wss://h/a" Track="both_tracks" OUTPUTSAMPLINGRATE="8000"'
        ' Connect="TRUE"/><say VOICE="v">Hi</say></response>'
    )
    assert verbs == [
        StreamSpec(url="wss://h/a", track="both_tracks", sample_rate=8000, connect=True),
        SayVerb(text="Hi", voice="v"),
    ]


def test_parse_response_reads_a_dial_number_child():
    """<Dial><Number>...</Number></Dial> is the other documented way to give the number."""
    verbs = parse_response(
        "<Response><Dial callerId='+254709000000'><Number>+254711000111</Number></Dial></Response>"
    )
    assert verbs == [DialVerb(number="+254711000111", caller_id="+254709000000")]


def test_parse_response_keeps_verbs_it_does_not_model():
    """Play, Redirect and friends come back as OtherVerb for the simulator to report."""
    verbs = parse_response('<Response><Redirect method="POST">https://h/next</Redirect></Response>')
    expected = OtherVerb(tag="Redirect", attributes={"method": "POST"}, text="https://h/next")
    assert verbs == [expected]


def test_parse_response_reads_a_stream_without_connect_as_one_way():
    """A Stream without connect="true" parses as connect=False, as the platform treats it."""
    (stream,) = parse_response('<Response><Stream url="wss://h/a"/></Response>')
    assert stream == StreamSpec(url="wss://h/a", connect=False)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<Reply><Say>Hi</Say></Reply>", "root must be <Response>"),
        ("<Response><Say>Hi</Response>", "malformed voice XML"),
        ("", "malformed voice XML"),
        ('<!DOCTYPE r [<!ENTITY a "aa">]><Response>&a;</Response>', "DOCTYPE"),
        ("<Response><Stream/></Response>", "needs a url"),
        ('<Response><Stream url="wss://h" track="left"/></Response>', "track must be one of"),
        ('<Response><Stream url="wss://h" outputSamplingRate="fast"/></Response>', "integer"),
        ("<Response><Dial/></Response>", "needs a number"),
    ],
)
def test_parse_response_rejects_what_it_cannot_execute(xml, message):
    """Malformed XML, a wrong root and unusable verbs raise ValueError with a reason."""
    with pytest.raises(ValueError, match=message):
        parse_response(xml)


def test_stream_spec_rejects_an_event_with_a_space():
    """statusEvents is space-separated on the wire, so an event name cannot hold a space."""
    with pytest.raises(ValueError, match="no spaces inside"):
        StreamSpec(url="wss://h/a", status_events=("stream started",))
