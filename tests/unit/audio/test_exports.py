"""The audio package's public names stay in step with its __all__."""

from __future__ import annotations

import orchestrator.audio as audio


def test_audio_exports_match_all() -> None:
    """Every public name is listed in __all__, sorted, and every listed name exists."""
    public = {
        name
        for name, value in vars(audio).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(audio.__name__)
    }
    assert set(audio.__all__) == public
    assert audio.__all__ == sorted(audio.__all__)
