"""Settings → the brain each call gets: offline (default), scripted, gemini, openai, chat or bench.

Sits on top like app.py and cli.py: it knows the settings, the flow and every adapter. Keys come from the
environment; a missing one is a ConfigError naming the variable, raised at start-up, not on the first call.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import structlog

from orchestrator.app import BrainFactory
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.errors import ConfigError
from orchestrator.flow import Flow
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.speech.choice import SpeechChoice, chosen_asr

log = structlog.get_logger(__name__)

__all__ = ["BRAINS", "DEFAULT_SCRIPT", "make_brain_factory", "speech_choice"]

BRAINS = ("offline", "scripted", "gemini", "openai", "chat", "bench")
DEFAULT_SCRIPT = (
    Path(__file__).resolve().parent.parent / "fixtures" / "calls" / "returning_caller_by_phone.yaml"
)


def speech_choice(settings: Settings) -> SpeechChoice:
    """The cascade brains' recogniser and voice, from ORCHESTRATOR_ASR / ORCHESTRATOR_TTS and friends."""
    fields = SpeechChoice.__dataclass_fields__
    return SpeechChoice(**{name: getattr(settings, name) for name in fields})


def _announced(speech: SpeechChoice) -> SpeechChoice:
    """`auto` depends on what is installed: say which recogniser it became, once, at start-up."""
    log.info("speech_chosen", asr=chosen_asr(speech), asr_setting=speech.asr, tts=speech.tts)
    return speech


def make_brain_factory(
    settings: Settings, flow: Flow, *, environ: Mapping[str, str] = os.environ
) -> BrainFactory:
    """Build the factory once at start-up (shared clients, loaded grammars); each call gets its own brain."""
    if settings.brain == "offline":
        from orchestrator.brains.cascade import make_offline_brain_factory

        return make_offline_brain_factory(flow, _announced(speech_choice(settings)))
    if settings.brain == "bench":
        from orchestrator.brains.bench import BenchBrain

        return lambda start: BenchBrain()
    if settings.brain == "scripted":
        script = load_script(settings.script or DEFAULT_SCRIPT)
        return lambda start: ScriptedBrain(script)
    if settings.brain == "gemini":
        from orchestrator.brains.gemini import GeminiLiveBrain, GeminiLiveConfig, make_client

        config = GeminiLiveConfig.from_env(environ)
        client = make_client(config)
        return lambda start: GeminiLiveBrain(config, client=client)
    if settings.brain == "openai":
        from orchestrator.brains.openai_realtime import OpenAIRealtimeBrain, OpenAIRealtimeConfig

        realtime = OpenAIRealtimeConfig.from_env(environ)
        return lambda start: OpenAIRealtimeBrain(realtime)
    if settings.brain == "chat":
        from orchestrator.brains.cascade import make_chat_brain_factory
        from orchestrator.brains.chat import ChatSettings

        if not settings.chat_base_url or not settings.chat_model:
            raise ConfigError(
                "the chat brain needs ORCHESTRATOR_CHAT_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama) "
                "and ORCHESTRATOR_CHAT_MODEL"
            )
        chat = ChatSettings(
            base_url=settings.chat_base_url,
            model=settings.chat_model,
            api_key=settings.chat_api_key or environ.get("OPENAI_API_KEY"),
        )
        return make_chat_brain_factory(flow, chat, _announced(speech_choice(settings)))
    raise ConfigError(f"unknown brain {settings.brain!r}; expected one of {', '.join(BRAINS)}")
