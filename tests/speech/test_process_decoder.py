"""The grammar decoder in its own process: the same results as in this one, and failures reported, not hung."""

import multiprocessing
import signal

import pytest

from orchestrator.brains.cascade import policy_config
from orchestrator.errors import ConfigError
from orchestrator.flow import load_flow
from orchestrator.speech import process
from orchestrator.speech.asr import SEARCH_NUMBERS, GrammarDecoder
from orchestrator.speech.grammar import GrammarSpec
from orchestrator.speech.process import DecoderProcessError, ProcessDecoder
from orchestrator.speech.voices import synthesize_caller
from tests.flows import ORDER_STATUS

CONFIG = policy_config(load_flow(ORDER_STATUS))
_PAD = b"\x00\x00" * 3200


def _stream(decoder, pcm: bytes) -> object:
    decoder.begin(SEARCH_NUMBERS)
    for at in range(0, len(pcm), 6400):  # 200 ms pieces, as the streaming recogniser sends them
        decoder.feed(pcm[at : at + 6400])
    return decoder.finish()


def test_a_process_decoder_hears_what_the_decoder_in_this_process_hears():
    """Streamed to a child process or decoded here, one utterance gives the same words and confidence
    (to rounding)."""
    pcm = _PAD + synthesize_caller("My order number is P K two zero nine three one.", "slt") + _PAD
    remote = ProcessDecoder(CONFIG.grammars())
    try:
        heard = _stream(remote, pcm)
        again = _stream(remote, pcm)  # and the next utterance starts afresh
    finally:
        remote.close()
    local = _stream(GrammarDecoder(CONFIG.grammars()), pcm)
    for result in (heard, again):
        assert result.text == local.text
        assert result.confidence == pytest.approx(local.confidence, abs=0.01)
    assert "p k two zero nine three one" in heard.text


def test_a_word_missing_from_the_dictionary_is_refused_where_the_decoder_is_built():
    """The child's ConfigError reaches the caller that asked for the decoder."""
    spec = GrammarSpec(intents={"odd": ("zyxwvut",)})
    with pytest.raises(ConfigError, match="zyxwvut"):
        ProcessDecoder(spec)


def test_a_decoder_process_that_died_is_an_error_not_a_hang():
    """The child is killed mid-call: the next utterance's result raises DecoderProcessError."""
    decoder = ProcessDecoder(GrammarSpec(intents={"yes": ("yes",)}))
    children = [p for p in multiprocessing.active_children() if p.name == "asr-decoder"]
    for child in children:
        child.kill()
        child.join()
    with pytest.raises(DecoderProcessError):
        decoder.begin(SEARCH_NUMBERS)
        decoder.feed(_PAD)
        decoder.finish()


def test_a_decoder_process_too_slow_to_start_is_killed_not_left_loading(monkeypatch):
    """A child that has not said "ready" in time is an error, and it is killed at once: one still loading
    its models would hold its memory while the pool starts another decoder in its place."""
    monkeypatch.setattr(process, "_START_TIMEOUT_S", 0.001)  # no child loads its models this fast
    decoder = ProcessDecoder.__new__(ProcessDecoder)  # kept, to look at its child after the error
    with pytest.raises(DecoderProcessError, match="did not answer"):
        decoder.__init__(GrammarSpec(intents={"yes": ("yes",)}))  # type: ignore[misc]
    decoder._process.join(10)
    assert decoder._process.exitcode == -signal.SIGKILL  # not 1: a BrokenPipeError once it had loaded
