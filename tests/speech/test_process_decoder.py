"""The grammar decoder in its own process: the same results as in this one, and failures reported, not hung."""

import multiprocessing
import os
import signal

import pytest

from orchestrator.brains.cascade import policy_config
from orchestrator.errors import ConfigError
from orchestrator.flow import load_flow
from orchestrator.speech import process
from orchestrator.speech.asr import SEARCH_NUMBERS, GrammarDecoder
from orchestrator.speech.grammar import GrammarSpec
from orchestrator.speech.process import DecoderProcessError, DecoderTemplate
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
    remote = DecoderTemplate(CONFIG.grammars()).fork()
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
        DecoderTemplate(spec).fork()


def test_a_decoder_process_that_died_is_an_error_not_a_hang():
    """The child is killed mid-call: the next utterance's result raises DecoderProcessError."""
    decoder = DecoderTemplate(GrammarSpec(intents={"yes": ("yes",)})).fork()
    os.kill(decoder.pid, signal.SIGKILL)
    with pytest.raises(DecoderProcessError):
        decoder.begin(SEARCH_NUMBERS)
        decoder.feed(_PAD)
        decoder.finish()


def test_a_template_too_slow_to_start_is_killed_not_left_loading(monkeypatch):
    """A template that has not said "ready" in time is an error, and it is killed at once: one still
    loading its models would hold its memory while the next fork starts another in its place."""
    started: list[multiprocessing.process.BaseProcess] = []
    real_process = process._CONTEXT.Process

    def recorded(*args, **kwargs):
        started.append(real_process(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(process._CONTEXT, "Process", recorded)
    monkeypatch.setattr(process, "_START_TIMEOUT_S", 0.001)  # no template loads its models this fast
    with pytest.raises(DecoderProcessError, match="did not answer"):
        DecoderTemplate(GrammarSpec(intents={"yes": ("yes",)})).fork()
    (template,) = started
    template.join(10)
    assert template.exitcode == -signal.SIGKILL  # not 1: a BrokenPipeError once it had loaded


def test_decoders_forked_from_one_template_decode_side_by_side():
    """Two decoders of one template, fed in turns, each hear their own utterance as the template would."""
    template = DecoderTemplate(CONFIG.grammars())
    first, second = template.fork(), template.fork()
    assert first.pid != second.pid
    number = _PAD + synthesize_caller("P K two zero nine three one.", "slt") + _PAD
    person = _PAD + synthesize_caller("I want to talk to a person.", "slt") + _PAD
    first.begin(SEARCH_NUMBERS)
    second.begin(SEARCH_NUMBERS)
    for at in range(0, max(len(number), len(person)), 6400):
        first.feed(number[at : at + 6400])
        second.feed(person[at : at + 6400])
    heard_number, heard_person = first.finish(), second.finish()
    local = GrammarDecoder(CONFIG.grammars())
    assert heard_number.text == _stream(local, number).text
    assert heard_person.text == _stream(local, person).text
    assert heard_number.text != heard_person.text
    first.close()
    second.close()
    template.close()


def test_a_template_process_that_died_is_started_again_at_the_next_fork():
    """Killing the template loses no decoder already forked, and the next fork starts a new template."""
    template = DecoderTemplate(GrammarSpec(intents={"yes": ("yes",)}))
    before = template.fork()
    template_pid = next(
        p.pid for p in multiprocessing.active_children() if p.name == "asr-decoder-template"
    )
    os.kill(template_pid, signal.SIGKILL)
    after = template.fork()
    yes = _PAD + synthesize_caller("yes", "slt") + _PAD
    for decoder in (before, after):
        decoder.begin("intents")
        decoder.feed(yes)
        assert decoder.finish().text == "yes"
    template.close()
