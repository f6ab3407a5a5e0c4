"""`orchestrator calls place`: notification calls about orders, one number or a CSV of deliveries.

    orchestrator calls place --to +254712345678 --order DX1042
    orchestrator calls place --csv deliveries.csv --rate 2/s

Each row is one `POST /v1/calls` with an Idempotency-Key derived from the flow, the order and the number, so
running the same file again (after a crash, or by mistake) gets the calls already placed back instead of
ringing anyone twice. The call's webhook URL carries the order, signed with the service's stream secret; the
service (`orchestrator serve`, same flow and secret) answers it at the flow's `initial_outbound` state and
retries unanswered calls per the flow's `outbound:`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.call.dialer import place_notification
from orchestrator.cli_output import format_table, print_json
from orchestrator.errors import ConfigError, FlowError
from orchestrator.flow import Flow, load_flow
from orchestrator.settings import DEFAULT_FLOW, Routes
from orchestrator.telephony.outbound import OutboundRequest, idempotency_key
from orchestrator.telephony.rest import SautikitClient, SautikitError
from orchestrator.telephony.webhook import normalise_phone

__all__ = [
    "PLACE_HELP",
    "PlaceResult",
    "add_place_arguments",
    "parse_rate",
    "place_calls",
    "read_deliveries",
    "run_place",
]

PLACE_HELP = """\
examples:
  orchestrator calls place --to +254712345678 --order DX1042
  orchestrator calls place --csv deliveries.csv --rate 2/s

deliveries.csv has a header row; the number column is `to` (or phone, msisdn, number), the order column
`order` (or order_number). Numbers may be written 0712 345 678: they are read as Kenyan.

Running the same rows again places nothing new: each row's Idempotency-Key is the same every time
(Sautikit answers with the call it already placed). The service retries calls nobody answered per the
flow's `outbound:` (retries, retry_after, voicemail).

environment variables (flags win over them):
  SAUTIKIT_API_KEY              bearer key for Sautikit's REST API (required)
  SAUTIKIT_BASE_URL             default https://api.sautikit.com
  ORCHESTRATOR_PUBLIC_URL       the service's public URL: calls' webhooks go to it + the voice path
  ORCHESTRATOR_STREAM_SECRET    the service's secret (required): it signs the order into the webhook URL
  ORCHESTRATOR_FLOW             the flow (default flows/order_status.yaml); needs `outbound:`
"""

_TO_COLUMNS = ("to", "phone", "msisdn", "number", "customer_phone")
_ORDER_COLUMNS = ("order", "order_number", "order_id")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute)\s*$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceResult:
    """What happened to one row: `placed` (or `already placed`), `invalid`, or `failed` with the reason."""

    row: int
    order: str
    to: str
    status: str
    call_id: str = ""
    detail: str = ""


def add_place_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--to", help="the customer's number (E.164, or 07… read as Kenyan); with --order")
    what.add_argument("--csv", type=Path, help="a CSV of deliveries: one call per row (columns below)")
    parser.add_argument("--order", help="the order the call is about (with --to), e.g. DX1042")
    parser.add_argument(
        "--rate", default="1/s", help="how fast to place calls from a CSV: N/s or N/m (default 1/s)"
    )
    parser.add_argument("--flow", type=Path, help="the flow file (default $ORCHESTRATOR_FLOW)")
    parser.add_argument(
        "--public-url", help="the service's public URL (default $ORCHESTRATOR_PUBLIC_URL)"
    )
    parser.add_argument("--voice-path", help="the voice route (default $ORCHESTRATOR_ROUTE_VOICE or /voice)")


def parse_rate(text: str) -> float:
    """Calls per second from `2/s` or `30/m`.

    >>> parse_rate("2/s"), parse_rate("30/m")
    (2.0, 0.5)
    """
    match = _RATE.match(text)
    if match is None or float(match[1]) <= 0:
        raise ConfigError(f"--rate must look like 2/s or 30/m, not {text!r}")
    per = 1.0 if match[2].startswith("s") else 60.0
    return float(match[1]) / per


def read_deliveries(text: str) -> list[tuple[int, str, str]]:
    """(row number, order, number as written) for each data row; the header names the columns."""
    reader = csv.DictReader(io.StringIO(text))
    header = {name.strip().lower(): name for name in reader.fieldnames or ()}
    to_column = next((header[c] for c in _TO_COLUMNS if c in header), None)
    order_column = next((header[c] for c in _ORDER_COLUMNS if c in header), None)
    if to_column is None or order_column is None:
        raise ConfigError(
            f"the CSV header needs a number column ({', '.join(_TO_COLUMNS)}) and an order column "
            f"({', '.join(_ORDER_COLUMNS)}); it has: {', '.join(header) or 'nothing'}"
        )
    return [
        (index, (row.get(order_column) or "").strip(), (row.get(to_column) or "").strip())
        for index, row in enumerate(reader, start=2)  # row 1 is the header
    ]


async def place_calls(
    rest: SautikitClient,
    rows: Sequence[tuple[int, str, str]],
    *,
    flow: Flow,
    voice_url: str,
    secret: bytes,
    per_second: float,
    progress: Callable[[int, PlaceResult], None] = lambda done, result: None,
    sleep: Callable[[float], object] = asyncio.sleep,
) -> list[PlaceResult]:
    """Place one call per row, no faster than `per_second`; every row gets a result, none raises."""
    results: list[PlaceResult] = []
    keys: set[str] = set()
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    for row, order, written in rows:
        to = normalise_phone(written)
        if to is None or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", order):
            problem = "not a phone number" if to is None else "not an order number"
            result = PlaceResult(row=row, order=order, to=written, status="invalid", detail=problem)
        else:
            request = OutboundRequest(order=order, to=to)
            key = idempotency_key(request, flow=flow.name)
            wait = next_at - loop.time()
            if wait > 0:
                await sleep(wait)  # type: ignore[misc]
            next_at = max(next_at, loop.time()) + 1 / per_second
            try:
                placement = await place_notification(
                    rest, flow=flow, request=request, voice_url=voice_url, secret=secret
                )
            except SautikitError as exc:
                detail = f"{exc.code or exc.status}: {exc.message}" if exc.message else str(exc.code)
                result = PlaceResult(row=row, order=order, to=to, status="failed", detail=detail)
            else:
                again = key in keys  # the same row twice in one file: Sautikit answered the first call
                result = PlaceResult(
                    row=row,
                    order=order,
                    to=to,
                    status="duplicate row" if again else "placed",
                    call_id=placement.session_id or placement.call_id,
                    detail=placement.status,
                )
            keys.add(key)
        results.append(result)
        progress(len(results), result)
    return results


def _voice_url(args: argparse.Namespace) -> str:
    public = args.public_url or os.environ.get("ORCHESTRATOR_PUBLIC_URL")
    if not public or not public.startswith(("https://", "http://")):
        raise ConfigError("set --public-url or ORCHESTRATOR_PUBLIC_URL to the service's public https URL")
    voice = args.voice_path or os.environ.get("ORCHESTRATOR_ROUTE_VOICE") or Routes().voice
    return public.rstrip("/") + voice


def _flow(args: argparse.Namespace) -> Flow:
    path = args.flow or Path(os.environ.get("ORCHESTRATOR_FLOW") or DEFAULT_FLOW)
    try:
        flow = load_flow(path)
    except FlowError as exc:
        raise ConfigError(f"the flow does not load:\n{exc}") from None
    if flow.outbound is None or flow.initial_outbound is None:
        raise ConfigError(f"{path}: add `initial_outbound:` and an `outbound:` section to place calls")
    return flow


def _rows(args: argparse.Namespace) -> list[tuple[int, str, str]]:
    if args.csv is None:
        if not args.order:
            raise ConfigError("--to needs --order: the order the call is about")
        return [(1, args.order, args.to)]
    if args.order:
        raise ConfigError("--order goes with --to; a CSV names each row's order")
    try:
        text = args.csv.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"cannot read {args.csv}: {exc.strerror}") from None
    return read_deliveries(text)


def _progress_printer(total: int) -> Callable[[int, PlaceResult], None]:
    tty = sys.stderr.isatty()

    def show(done: int, result: PlaceResult) -> None:
        filled = round(20 * done / total) if total else 20
        bar = "#" * filled + "." * (20 - filled)
        line = f"[{bar}] {done}/{total}  row {result.row} {result.order}: {result.status}"
        print(("\r" + line.ljust(78)) if tty else line, end="" if tty else "\n", file=sys.stderr)
        if tty and done == total:
            print(file=sys.stderr)

    return show


async def run_place(rest: SautikitClient, args: argparse.Namespace) -> int:
    """The `calls place` command: exit 0 when every row was placed, 1 when any failed or was invalid."""
    secret = os.environ.get("ORCHESTRATOR_STREAM_SECRET")
    if not secret:
        raise ConfigError(
            "set ORCHESTRATOR_STREAM_SECRET to the service's stream secret: it signs the order into "
            "each call's webhook URL, and the service refuses a URL it did not sign"
        )
    flow, rows, voice_url = _flow(args), _rows(args), _voice_url(args)
    per_second = parse_rate(args.rate)
    results = await place_calls(
        rest,
        rows,
        flow=flow,
        voice_url=voice_url,
        secret=secret.encode(),
        per_second=per_second,
        progress=_progress_printer(len(rows)) if not args.json else lambda done, result: None,
    )
    if args.json:
        print_json([_as_dict(result) for result in results])
    else:
        table = [[str(r.row), r.order, r.to, r.status, r.call_id or "-", r.detail or "-"] for r in results]
        print(format_table(("ROW", "ORDER", "TO", "RESULT", "CALL", "DETAIL"), table))
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        print(", ".join(f"{n} {status}" for status, n in counts.items()) or "no rows")
    if any(r.status == "failed" and _refuses_caller_id(r.detail) for r in results):
        assert flow.outbound is not None  # _flow checked it
        print(
            f"hint: the platform refused the flow's caller id {flow.outbound.caller_id} (outbound.caller_id): "
            "calls go out from a number the workspace owns. See `orchestrator numbers list`; claim one with "
            "`orchestrator numbers available` and `orchestrator numbers claim`, or change outbound.caller_id.",
            file=sys.stderr,
        )
    return 0 if all(r.status in ("placed", "duplicate row") for r in results) else 1


def _refuses_caller_id(detail: str) -> bool:
    """A platform refusal about the `from` number (Sautikit's fake says `calls.invalid_from`)."""
    return re.search(r"\bfrom\b|invalid_from|caller.?id", detail, re.IGNORECASE) is not None


def _as_dict(result: PlaceResult) -> dict[str, object]:
    return {name: getattr(result, name) for name in PlaceResult.__slots__}
