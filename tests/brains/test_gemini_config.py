"""GeminiLiveConfig: where the key, model, voice and language come from, and the error when the key is missing."""

from __future__ import annotations

import pytest

from orchestrator.brains.gemini import DEFAULT_MODEL, GeminiLiveConfig
from orchestrator.errors import ConfigError


def test_gemini_config_missing_key_names_the_variable():
    """With neither GEMINI_API_KEY nor GOOGLE_API_KEY set, the error says which variable to set."""
    with pytest.raises(ConfigError, match="GEMINI_API_KEY is not set"):
        GeminiLiveConfig.from_env({})


def test_gemini_config_reads_gemini_key_first():
    """GEMINI_API_KEY wins over GOOGLE_API_KEY; defaults stay for what the environment leaves out."""
    config = GeminiLiveConfig.from_env({"GEMINI_API_KEY": "g-key", "GOOGLE_API_KEY": "other"})
    assert config.api_key == "g-key"
    assert config.model == DEFAULT_MODEL
    assert config.api_version == "v1beta"


def test_gemini_config_falls_back_to_google_key():
    """GOOGLE_API_KEY alone is enough."""
    assert GeminiLiveConfig.from_env({"GOOGLE_API_KEY": "google-key"}).api_key == "google-key"


def test_gemini_config_environment_and_overrides():
    """Model, voice, language and base URL come from the environment; keyword overrides win over it."""
    environ = {
        "GEMINI_API_KEY": "k",
        "GEMINI_LIVE_MODEL": "gemini-3.1-flash-live-preview",
        "GEMINI_LIVE_VOICE": "Puck",
        "GEMINI_LIVE_LANGUAGE": "en-US",
        "GEMINI_BASE_URL": "https://proxy.example.test",
    }
    config = GeminiLiveConfig.from_env(environ, voice="Kore", reconnects=2)
    assert config.model == "gemini-3.1-flash-live-preview"
    assert config.voice == "Kore"
    assert config.language == "en-US"
    assert config.base_url == "https://proxy.example.test"
    assert config.reconnects == 2


def test_gemini_config_key_override_needs_no_environment():
    """An explicit api_key needs no variable at all."""
    assert GeminiLiveConfig.from_env({}, api_key="explicit").api_key == "explicit"


def test_gemini_config_repr_hides_the_key():
    """The key never shows up in a repr (logs, tracebacks)."""
    assert "secret-key" not in repr(GeminiLiveConfig(api_key="secret-key"))
