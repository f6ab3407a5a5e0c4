"""The embedded demo orders backend: the orders API served from SQLite, so demos work offline.

`demo_orders_app()` is an aiohttp sub-application (mount it with `app.add_subapp("/demo", ...)`,
or run it on its own) serving `GET /api/orders?order_number=...` and `GET /api/orders?phone=...`
exactly as reference/orders-api.md describes. Faults can be injected for tests and demos: for
every request through `app[DEMO_BACKEND].fault`, or for one request with the `X-Demo-Fault`
header or the `?fault=` query parameter.

Storage: SQLite is the source of truth and every query runs in `asyncio.to_thread`. Rows held in
memory would be a little faster, but then a demo operator could not add or edit orders in the
database file while the service runs; one small query per lookup is cheap, and the thread keeps
the loop free. Seeding (upserting `fixtures/orders.json`) happens once, at start-up.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import Path

import structlog
from aiohttp import web

from orchestrator.orders.models import normalise_order_number, phone_key

__all__ = ["DEFAULT_SEED", "DEMO_BACKEND", "DemoFault", "DemoOrdersBackend", "demo_orders_app"]

log = structlog.get_logger(__name__)

DEFAULT_SEED: Path = Path(__file__).resolve().parents[2] / "fixtures" / "orders.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    order_number TEXT PRIMARY KEY,
    phone_key    TEXT NOT NULL,
    placed_epoch REAL NOT NULL,
    body         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_phone ON orders (phone_key, placed_epoch DESC);
"""


class DemoFault(StrEnum):
    """How the demo backend misbehaves, to rehearse the `lookup_failed` route."""

    HEALTHY = "healthy"
    ERROR_5XX = "error_5xx"  # 503 with a JSON error body
    SLOW = "slow"  # answers only after `slow_s`, longer than any sane client timeout
    BAD_JSON = "bad_json"  # 200 with a body that is not JSON


# Short spellings accepted in the X-Demo-Fault header, beside the full names.
_FAULT_ALIASES: Mapping[str, DemoFault] = {
    "timeout": DemoFault.SLOW,
    "5xx": DemoFault.ERROR_5XX,
    **{fault.value: fault for fault in DemoFault},
}


class DemoOrdersBackend:
    """Demo orders in SQLite, with a settable fault mode.

        backend = DemoOrdersBackend.from_fixture(DEFAULT_SEED)
        backend.fault = DemoFault.ERROR_5XX   # every request now fails with 503
    """

    def __init__(self, connection: sqlite3.Connection, *, slow_s: float = 30.0) -> None:
        self._db = connection
        # One connection shared by worker threads; sqlite3 objects need their calls serialised.
        self._lock = threading.Lock()
        self.fault: DemoFault = DemoFault.HEALTHY
        self.slow_s = slow_s

    @classmethod
    def from_fixture(
        cls, path: Path = DEFAULT_SEED, *, db_path: str | Path | None = None, slow_s: float = 30.0
    ) -> DemoOrdersBackend:
        """Open or create the database and upsert the fixture's orders. Blocking: start-up only."""
        orders = _read_fixture(path)
        connection = sqlite3.connect(
            ":memory:" if db_path is None else str(db_path), check_same_thread=False
        )
        connection.executescript(_SCHEMA)
        with connection:
            connection.executemany(
                "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?)",
                [_row(order) for order in orders],
            )
        log.info("demo_orders_seeded", count=len(orders), db=str(db_path or ":memory:"))
        return cls(connection, slow_s=slow_s)

    async def by_order_number(self, order_number: str) -> dict[str, object] | None:
        """The stored order with this (normalised) number, or None."""
        rows = await asyncio.to_thread(
            self._query,
            "SELECT body FROM orders WHERE order_number = ?",
            (normalise_order_number(order_number),),
        )
        return rows[0] if rows else None

    async def by_phone(self, phone: str) -> list[dict[str, object]]:
        """The orders placed from this phone number, most recent first."""
        key = phone_key(phone)
        if not key:
            return []
        return await asyncio.to_thread(
            self._query,
            "SELECT body FROM orders WHERE phone_key = ? ORDER BY placed_epoch DESC",
            (key,),
        )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple[str, ...]) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [json.loads(body) for (body,) in rows]


def _read_fixture(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    orders = data["orders"] if isinstance(data, dict) else data
    if not isinstance(orders, list) or not all(isinstance(o, dict) for o in orders):
        raise ValueError(f"{path}: expected a list of order objects or {{'orders': [...]}}")
    return orders


def _row(order: Mapping[str, object]) -> tuple[str, str, float, str]:
    number = normalise_order_number(str(order["order_number"]))
    phone = order.get("customer_phone")
    placed = order.get("placed_at")
    # Sort on an instant, not the text: fixture rows may carry different UTC offsets.
    epoch = datetime.fromisoformat(placed).timestamp() if isinstance(placed, str) else 0.0
    return number, phone_key(phone) if isinstance(phone, str) else "", epoch, json.dumps(order)


DEMO_BACKEND = web.AppKey("demo_orders_backend", DemoOrdersBackend)


def demo_orders_app(
    db_path: str | Path | None = None,
    seed: Path = DEFAULT_SEED,
    *,
    backend: DemoOrdersBackend | None = None,
) -> web.Application:
    """The demo orders API as an aiohttp application; its backend, `app[DEMO_BACKEND]`, closes with it.

    Builds (and seeds) the backend unless one is given; that reads the seed file, so call this at
    start-up.
    """
    app = web.Application()
    if backend is None:
        backend = DemoOrdersBackend.from_fixture(seed, db_path=db_path)
    app[DEMO_BACKEND] = backend
    app.router.add_get("/api/orders", _handle_orders)
    app.on_cleanup.append(_close_backend)
    return app


async def _close_backend(app: web.Application) -> None:
    app[DEMO_BACKEND].close()


async def _handle_orders(request: web.Request) -> web.StreamResponse:
    backend = request.app[DEMO_BACKEND]
    requested = request.headers.get("X-Demo-Fault") or request.query.get("fault")
    fault = backend.fault
    if requested:
        if requested.strip().lower() not in _FAULT_ALIASES:
            return web.json_response({"error": "unknown_fault"}, status=400)
        fault = _FAULT_ALIASES[requested.strip().lower()]

    if fault is DemoFault.ERROR_5XX:
        return web.json_response({"error": "service_unavailable"}, status=503)
    if fault is DemoFault.SLOW:
        # asyncio.sleep, so a fast-forwarded test clock skips it.
        await asyncio.sleep(backend.slow_s)
    if fault is DemoFault.BAD_JSON:
        return web.Response(text='{"status": "out_for_del', content_type="application/json")

    order_number = request.query.get("order_number", "").strip()
    phone = request.query.get("phone", "").strip()
    if order_number:
        order = await backend.by_order_number(order_number)
        if order is None:
            return web.json_response({"error": "not_found"}, status=404)
        return web.json_response(order)
    if phone:
        return web.json_response({"orders": await backend.by_phone(phone)})
    return web.json_response({"error": "order_number or phone is required"}, status=400)
