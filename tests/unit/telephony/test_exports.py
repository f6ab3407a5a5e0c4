"""The telephony package's front door: its __all__ matches what its modules export."""

from __future__ import annotations

import orchestrator.telephony as telephony
from orchestrator.telephony import call_id, metadata, replay, signing, webhook, xml


def test_telephony_all_is_the_sorted_union_of_its_modules():
    """Every public name of the pure modules is exported once, and nothing else."""
    modules = (call_id, metadata, replay, signing, webhook, xml)
    expected = sorted(name for module in modules for name in module.__all__)
    assert telephony.__all__ == expected


def test_telephony_exports_resolve():
    """Each exported name exists on the package."""
    missing = [name for name in telephony.__all__ if not hasattr(telephony, name)]
    assert missing == []
