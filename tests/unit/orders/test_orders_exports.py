"""The orders package's public names stay in step with its __all__."""

from __future__ import annotations

import orchestrator.orders as orders


def test_orders_exports_match_all() -> None:
    """Every public class and function is in __all__, which is sorted and names only real things."""
    defined_here = {
        name
        for name, value in vars(orders).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(orders.__name__)
    }
    assert defined_here <= set(orders.__all__)
    assert all(hasattr(orders, name) for name in orders.__all__)
    assert orders.__all__ == sorted(orders.__all__)


def test_orders_submodules_export_what_the_package_gathers() -> None:
    """Each name in the package's __all__ comes from one submodule's own __all__."""
    from orchestrator.orders import client, demo, models

    gathered = {*client.__all__, *demo.__all__, *models.__all__}
    assert set(orders.__all__) <= gathered
