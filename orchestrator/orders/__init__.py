"""Orders: look an order up in the shop's API (`OrdersClient`), serve demo orders offline.

`demo_orders_app` is the embedded backend. Knows nothing of flows, calls or telephony; a failed
lookup raises `orchestrator.errors.OrdersError`.
"""

from __future__ import annotations

from orchestrator.orders.client import OrdersApiConfig, OrdersClient
from orchestrator.orders.demo import (
    DEFAULT_SEED,
    DEMO_BACKEND,
    DemoFault,
    DemoOrdersBackend,
    demo_orders_app,
)
from orchestrator.orders.models import (
    KNOWN_STATUSES,
    LookupResult,
    Order,
    normalise_order_number,
    phone_key,
)

__all__ = [
    "DEFAULT_SEED",
    "DEMO_BACKEND",
    "DemoFault",
    "DemoOrdersBackend",
    "KNOWN_STATUSES",
    "LookupResult",
    "Order",
    "OrdersApiConfig",
    "OrdersClient",
    "demo_orders_app",
    "normalise_order_number",
    "phone_key",
]
