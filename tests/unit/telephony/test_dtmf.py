"""Key presses are read from every text-frame shape mod_audio_fork-style platforms use, and nothing else."""

import pytest

from orchestrator.telephony.dtmf import clean_keys, parse_dtmf


@pytest.mark.parametrize(
    ("frame", "keys"),
    [
        ('{"event": "dtmf", "dtmf": "5"}', "5"),
        ('{"event": "dtmf", "dtmf": {"digit": "5", "duration": 120}}', "5"),
        ('{"event": "DTMF", "digit": "#"}', "#"),
        ('{"type": "dtmf", "data": {"digit": "*"}}', "*"),
        ('{"type": "dtmf", "data": {"digits": "42"}}', "42"),
        ('{"event": "dtmf", "dtmf": 7}', "7"),
        ('{"event": "keypress", "payload": {"key": "0"}}', "0"),
    ],
)
def test_parse_dtmf_reads_each_known_shape(frame: str, keys: str) -> None:
    """Each shape of a key press yields its key(s)."""
    assert parse_dtmf(frame) == keys


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "killAudio"}',
        '{"type": "mark", "data": {"name": "x", "event": "playout"}}',
        '{"callSid": "HD_1", "sampleRate": 16000, "digits": "12"}',  # metadata, not an event
        '{"event": "dtmf", "dtmf": "x"}',
        '{"event": "dtmf", "dtmf": true}',
        "not json",
        "[1, 2]",
    ],
)
def test_parse_dtmf_ignores_frames_that_are_not_key_presses(frame: str) -> None:
    """Metadata, fork notices, junk keys and broken JSON are not key presses."""
    assert parse_dtmf(frame) is None


def test_clean_keys_drops_separators_and_refuses_junk() -> None:
    """The webhook's `Digits` may come spaced or comma separated; anything not a key refuses the lot."""
    assert clean_keys(" 1,0 4 2#") == "1042#"
    assert clean_keys("12; DROP") is None
    assert clean_keys("") is None
