"""OpenAIRealtimeConfig: the key comes from OPENAI_API_KEY; a missing or wrong setting is named."""

from __future__ import annotations

import pytest

from orchestrator.brains.openai_realtime import OpenAIRealtimeConfig
from orchestrator.errors import ConfigError


def test_openai_config_without_key_names_the_variable():
    """No OPENAI_API_KEY: a ConfigError whose message names the variable to set."""
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        OpenAIRealtimeConfig.from_env({})


def test_openai_config_blank_key_counts_as_missing():
    """A key of only whitespace is as good as none."""
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIRealtimeConfig.from_env({"OPENAI_API_KEY": "  "})


def test_openai_config_reads_key_and_defaults():
    """The key is read from the environment; model, URL and turn detection default to the GA API."""
    config = OpenAIRealtimeConfig.from_env({"OPENAI_API_KEY": "sk-abc"})
    assert config.api_key == "sk-abc"
    assert config.model == "gpt-realtime"
    assert config.url == "wss://api.openai.com/v1/realtime"
    assert config.turn_detection == "server_vad"


def test_openai_config_environment_and_overrides():
    """OPENAI_REALTIME_* variables set the model, voice and URL; keyword overrides win over them."""
    config = OpenAIRealtimeConfig.from_env(
        {
            "OPENAI_API_KEY": "sk-abc",
            "OPENAI_REALTIME_MODEL": "gpt-realtime-mini",
            "OPENAI_REALTIME_VOICE": "cedar",
        },
        voice="marin",
        turn_detection="semantic_vad",
    )
    assert config.model == "gpt-realtime-mini"
    assert config.voice == "marin"
    assert config.turn_detection == "semantic_vad"


def test_openai_config_override_key_needs_no_environment():
    """An api_key passed in directly is enough."""
    assert OpenAIRealtimeConfig.from_env({}, api_key="sk-direct").api_key == "sk-direct"


def test_openai_config_rejects_unknown_setting():
    """A misspelt override is a ConfigError naming it, not a silent default."""
    with pytest.raises(ConfigError, match="modle"):
        OpenAIRealtimeConfig.from_env({"OPENAI_API_KEY": "sk-abc"}, modle="gpt-realtime")


def test_openai_config_rejects_unknown_turn_detection():
    """Turn detection is server_vad or semantic_vad."""
    with pytest.raises(ConfigError, match="turn_detection"):
        OpenAIRealtimeConfig.from_env({"OPENAI_API_KEY": "sk-abc"}, turn_detection="push_to_talk")


def test_openai_config_keeps_key_out_of_repr_and_url():
    """The key travels in a header only: it is in neither the repr nor the endpoint URL."""
    config = OpenAIRealtimeConfig.from_env({"OPENAI_API_KEY": "sk-secret"})
    assert "sk-secret" not in repr(config)
    assert config.endpoint() == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
