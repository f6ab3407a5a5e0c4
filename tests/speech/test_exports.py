"""orchestrator.speech's public names: `__all__` is sorted and matches what the package exports."""

import orchestrator.speech as speech


def test_speech_exports_are_sorted_and_real():
    """Every name in __all__ exists and the list is sorted."""
    assert speech.__all__ == sorted(speech.__all__)
    assert all(hasattr(speech, name) for name in speech.__all__)
