"""Answering-machine detection: a person's short hello, silence, a long greeting, a beep."""

from orchestrator.call.answering import AnsweringDetector


def _run(detector: AnsweringDetector, timeline: list[tuple[int, bool, bool]]) -> list[tuple[int, str]]:
    """Step 20 ms frames: (until_ms, speaking, beep at the first frame of the span)."""
    events: list[tuple[int, str]] = []
    at = 0
    for until, speaking, beep in timeline:
        first = True
        while at < until:
            at += 20
            event = detector.step(at_ms=at, speaking=speaking, beep=beep and first)
            first = False
            if event is not None:
                events.append((at, event))
    return events


def _detector() -> AnsweringDetector:
    return AnsweringDetector(greeting_ms=4000, quiet_answer_ms=2500)


def test_answering_a_short_hello_then_a_pause_is_a_person() -> None:
    """"Hello?" (0.6 s) and a pause: a person, decided when the speech stops."""
    events = _run(_detector(), [(300, False, False), (900, True, False), (2000, False, False)])
    assert events == [(920, "person")]


def test_answering_silence_is_a_person_waiting_for_us() -> None:
    """Nobody speaks for `quiet_answer_ms`: someone picked up and waits."""
    assert _run(_detector(), [(3000, False, False)]) == [(2500, "person")]


def test_answering_a_long_greeting_is_a_voicemail_whose_end_is_a_pause() -> None:
    """Speech past `greeting_ms` is a voicemail; with no beep, its end is 1.5 s of quiet after it."""
    events = _run(_detector(), [(200, False, False), (9000, True, False), (12000, False, False)])
    assert events == [(4220, "voicemail"), (10520, "greeting_over")]


def test_answering_a_beep_ends_the_greeting_once_it_stops_sounding() -> None:
    """A beep during a greeting: the message may start a moment after the tone is over."""
    timeline = [(6000, True, False), (6400, True, True), (7000, False, False)]
    events = _run(_detector(), timeline)
    assert events == [(4020, "voicemail"), (6620, "greeting_over")]


def test_answering_a_beep_alone_is_a_voicemail() -> None:
    """A beep with no greeting before it (a short greeting already played): a voicemail."""
    events = _run(_detector(), [(1000, False, False), (1400, True, True), (2000, False, False)])
    assert events == [(1020, "voicemail"), (1620, "greeting_over")]
