"""Transcript rendering: the timed form, and the conversation form without clock or wire details."""

from orchestrator.call.transcript import Transcript


def _call() -> Transcript:
    transcript = Transcript(call_sid="HD_1", system_prompt="You help callers. Be brief.")
    transcript.add(0, "call", "HD_1 from +2547*****678 to +2547*****000 flow order_status")
    transcript.add(0, "state", "-> greeting")
    transcript.add(
        0,
        "xml",
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="en-KE">Hello.</Say>'
        '<Stream url="wss://x/audio"/></Response>',
    )
    transcript.add(4620, "stream", "connected")
    transcript.add(4620, "state", "greeting -> identifying (stream_started)")
    transcript.told(4620, state="identifying", instructions="Ask for it. Be kind.", tools=("lookup_order",))
    transcript.add(9560, "caller", '"DX1042 please."')
    transcript.add(9560, "lookup", "order_number=DX1042 -> 1 order(s), first DX1042 dispatched (12 ms)")
    transcript.add(9990, "latency", "reply audio 380 ms after the caller stopped")
    transcript.add(12000, "barge-in", 'caller spoke at 7120 ms of stream; agent cut at 2480/9790 ms; heard "Your"')
    transcript.add(13000, "state", "looking_up -> identifying (order_not_found)")
    transcript.told(13000, state="identifying", instructions="Ask for it. Be kind.", tools=("lookup_order",))
    transcript.add(13280, "xml", '<?xml version="1.0" encoding="UTF-8"?><Response/>')
    return transcript


def test_transcript_render_is_unchanged_without_prompts() -> None:
    """The default timed rendering is every entry on the call clock, and nothing else."""
    lines = _call().render().splitlines()
    assert lines[0] == "[00:00.000] call      HD_1 from +2547*****678 to +2547*****000 flow order_status"
    assert "[00:04.620] stream    connected" in lines
    assert not any("model" in line for line in lines)


def test_transcript_render_with_prompts_places_what_the_model_was_told() -> None:
    """With prompts, the system prompt leads and each state's briefing follows its state line."""
    lines = _call().render(prompts=True).splitlines()
    assert lines[:3] == ["model     system prompt:", "              You help callers.", "              Be brief."]
    entered = lines.index("[00:04.620] state     greeting -> identifying (stream_started)")
    assert lines[entered + 1 : entered + 4] == [
        "[00:04.620] model     identifying: lookup_order; instructions:",
        "                          Ask for it.",
        "                          Be kind.",
    ]


def test_transcript_render_conversation_drops_the_clock_and_the_wire() -> None:
    """The conversation form keeps who said and did what, a sentence a line, without times."""
    assert _call().render_conversation() == (
        "model     system prompt:\n"
        "              You help callers.\n"
        "              Be brief.\n"
        "state     -> greeting\n"
        'xml       Say "Hello." + Stream\n'
        "state     greeting -> identifying (stream_started)\n"
        "model     identifying: lookup_order; instructions:\n"
        "              Ask for it.\n"
        "              Be kind.\n"
        'caller    "DX1042 please."\n'
        "lookup    order_number=DX1042 -> 1 order(s), first DX1042 dispatched\n"
        'barge-in  heard "Your"\n'
        "state     looking_up -> identifying (order_not_found)\n"
        "model     identifying: lookup_order; instructions as before\n"
    )
