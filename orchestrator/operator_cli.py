"""Operator commands over Sautikit's REST API: `orchestrator numbers ...` and `... calls ...`.

    orchestrator numbers available [--country KE]
    orchestrator numbers claim INVENTORY_ID
    orchestrator numbers list
    orchestrator numbers route NUMBER_ID --public-url https://agent.example.com
    orchestrator numbers release NUMBER_ID --yes
    orchestrator calls show CALL_ID
    orchestrator calls list [--limit 20] [--cursor C | --all]
    orchestrator calls place --to +254712345678 --order DX1042   (or --csv deliveries.csv --rate 2/s)

Human tables by default, `--json` for scripts. Phone numbers are printed in full: the operator
owns them. A Sautikit error is one line on stderr with its code and request_id, and exit status 1;
a missing setting is exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ValidationError

from orchestrator.cli_output import add_leaf, format_money, format_table, or_dash, print_json
from orchestrator.errors import ConfigError
from orchestrator.outbound_cli import PLACE_HELP, add_place_arguments, run_place
from orchestrator.settings import Routes
from orchestrator.telephony.rest import (
    AvailableNumber,
    CallRecord,
    Number,
    SautikitClient,
    SautikitConfig,
    SautikitError,
)

__all__ = ["add_operator_commands"]

_Action = Callable[[SautikitClient, argparse.Namespace], Awaitable[int]]

_ENV_HELP = """\
environment variables (flags win over them):
  SAUTIKIT_API_KEY          bearer key for Sautikit's REST API (required)
  SAUTIKIT_BASE_URL         default https://api.sautikit.com
  SAUTIKIT_CLAIM_STYLE      seed (POST /v1/numbers, default) or
                            inventory (POST /v1/numbers/{inventory_id}/claim)
  SAUTIKIT_ROUTING_STYLE    patch (PATCH /v1/numbers/{id} routing_url, default) or
                            put (PUT /v1/numbers/{id}/routing voice_callback_url + events_url)
"""


def add_operator_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `numbers` and `calls` command groups on the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts, not a table")
    common.add_argument("--base-url", help="Sautikit API base URL (default $SAUTIKIT_BASE_URL)")
    common.add_argument(
        "--claim-style", choices=("seed", "inventory"), help="which claim endpoint to call"
    )
    common.add_argument(
        "--routing-style", choices=("patch", "put"), help="which routing endpoint to call"
    )
    common.add_argument(
        "--timeout", type=float, help="seconds to wait for each answer (default 10)"
    )

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str
    ) -> argparse.ArgumentParser:
        return add_leaf(group, name, help_, common=common, epilog=_ENV_HELP)

    numbers = subparsers.add_parser(
        "numbers",
        help="claim Sautikit numbers and point them at this service",
        description="Manage the workspace's Sautikit phone numbers.",
        epilog=_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    number_commands = numbers.add_subparsers(title="numbers commands", metavar="ACTION")

    available = leaf(number_commands, "available", "list numbers you can claim")
    available.add_argument("--country", default="KE", help="ISO country code (default KE)")
    available.set_defaults(run=_runner(_available))

    claim = leaf(number_commands, "claim", "claim an inventory number (charged to the wallet)")
    claim.add_argument("inventory_id", help="the ID column of `numbers available`")
    claim.add_argument(
        "--idempotency-key", help="makes the claim safe to retry; the same key never claims twice"
    )
    claim.set_defaults(run=_runner(_claim))

    listing = leaf(number_commands, "list", "list the numbers this workspace owns")
    listing.set_defaults(run=_runner(_list_numbers))

    route = leaf(
        number_commands,
        "route",
        "point a number's voice webhook at this service (PUBLIC_URL + the voice route path)",
    )
    route.add_argument("number_id", help="the ID column of `numbers list`")
    route.add_argument(
        "--public-url", help="the service's public https URL (default $ORCHESTRATOR_PUBLIC_URL)"
    )
    route.add_argument(
        "--voice-path", help="the voice route (default $ORCHESTRATOR_ROUTE_VOICE or /voice)"
    )
    route.add_argument("--events-url", help="also send platform events to this URL")
    route.set_defaults(run=_runner(_route))

    release = leaf(number_commands, "release", "give a number back; its callers stop reaching you")
    release.add_argument("number_id", help="the ID column of `numbers list`")
    release.add_argument("--yes", action="store_true", help="confirm: callers lose this number")
    release.set_defaults(run=_runner(_release))

    calls = subparsers.add_parser(
        "calls",
        help="read Sautikit call records; place notification calls",
        description="Read call detail records from Sautikit, and place outbound notification calls.",
        epilog=_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call_commands = calls.add_subparsers(title="calls commands", metavar="ACTION")

    show = leaf(call_commands, "show", "show one call's record and events")
    show.add_argument("call_id", help="call UUID or HD_ session id")
    show.set_defaults(run=_runner(_show_call))

    calls_list = leaf(call_commands, "list", "list call records, newest first")
    calls_list.add_argument("--limit", type=int, default=20, help="records per page (default 20)")
    where = calls_list.add_mutually_exclusive_group()
    where.add_argument("--cursor", help="start after this cursor (printed under the table)")
    where.add_argument("--all", action="store_true", help="follow every page to the end")
    calls_list.set_defaults(run=_runner(_list_calls))

    place = add_leaf(
        call_commands,
        "place",
        "call customers about their orders (one number, or a CSV of deliveries)",
        common=common,
        epilog=PLACE_HELP,
    )
    add_place_arguments(place)
    place.set_defaults(run=_runner(run_place))


# --- running a command --------------------------------------------------------------------------


def _runner(action: _Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            config = SautikitConfig.from_env(
                base_url=args.base_url,
                timeout_s=args.timeout,
                claim_style=args.claim_style,
                routing_style=args.routing_style,
            )
            return asyncio.run(_call(config, action, args))
        except ConfigError as exc:
            print(f"orchestrator: configuration error: {exc}", file=sys.stderr)
            return 2
        except SautikitError as exc:
            print(f"orchestrator: sautikit error: {exc}", file=sys.stderr)
            return 1

    return run


async def _call(config: SautikitConfig, action: _Action, args: argparse.Namespace) -> int:
    async with SautikitClient(config) as sautikit:
        return await action(sautikit, args)


def _print_json(value: object) -> None:
    print_json(_jsonable(value))


def _jsonable(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


# --- numbers ------------------------------------------------------------------------------------


async def _available(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    offers = await sautikit.available_numbers(args.country)
    if args.json:
        _print_json(offers)
    elif not offers:
        print(f"no numbers available in {args.country}")
    else:
        rows = [_offer_row(offer) for offer in offers]
        print(format_table(("ID", "NUMBER", "COUNTRY", "MONTHLY"), rows))
    return 0


def _offer_row(offer: AvailableNumber) -> list[str]:
    return [
        offer.id,
        offer.e164,
        or_dash(offer.country),
        format_money(offer.monthly_price_minor, offer.currency),
    ]


def _numbers_table(numbers: Sequence[Number]) -> str:
    rows = [
        [n.id, n.e164, or_dash(n.country), or_dash(n.status), or_dash(n.routing_url)]
        for n in numbers
    ]
    return format_table(("ID", "NUMBER", "COUNTRY", "STATUS", "ROUTING URL"), rows)


async def _claim(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    number = await sautikit.claim_number(args.inventory_id, idempotency_key=args.idempotency_key)
    if args.json:
        _print_json(number)
    else:
        print(f"claimed {number.e164} as {number.id}")
        print(f"next: orchestrator numbers route {number.id} --public-url https://...")
    return 0


async def _list_numbers(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    numbers = await sautikit.list_numbers()
    if args.json:
        _print_json(numbers)
    elif not numbers:
        print("this workspace owns no numbers: see `orchestrator numbers available`")
    else:
        print(_numbers_table(numbers))
    return 0


def _voice_url(args: argparse.Namespace) -> str:
    public = args.public_url or os.environ.get("ORCHESTRATOR_PUBLIC_URL")
    if not public:
        raise ConfigError("set --public-url or ORCHESTRATOR_PUBLIC_URL to the service's public URL")
    if not public.startswith(("https://", "http://")):
        raise ConfigError(f"the public URL must start with https:// (got {public!r})")
    try:
        path = Routes(voice=args.voice_path) if args.voice_path else Routes()
    except ValidationError as exc:
        raise ConfigError(f"voice route path: {exc.errors()[0]['msg']}") from None
    return public.rstrip("/") + path.voice


async def _route(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    number = await sautikit.set_routing(args.number_id, _voice_url(args), args.events_url)
    if args.json:
        _print_json(number)
    else:
        print(f"{number.e164} ({number.id}) now routes calls to {number.routing_url}")
    return 0


async def _release(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    if not args.yes:
        print(
            f"orchestrator: releasing {args.number_id} cuts off everyone who calls it; "
            "run again with --yes",
            file=sys.stderr,
        )
        return 2
    await sautikit.release_number(args.number_id)
    if args.json:
        _print_json({"released": args.number_id})
    else:
        print(f"released {args.number_id}")
    return 0


# --- calls --------------------------------------------------------------------------------------


def _calls_table(calls: Sequence[CallRecord]) -> str:
    rows = [
        [
            call.id,
            or_dash(call.session_id),
            or_dash(call.direction),
            or_dash(call.local_e164),
            or_dash(call.remote_e164),
            call.status,
            call.started_at.strftime("%Y-%m-%d %H:%M:%S") if call.started_at else "-",
            f"{call.duration_seconds:g}s" if call.duration_seconds is not None else "-",
            format_money(call.cost_minor, call.cost_currency),
        ]
        for call in calls
    ]
    headers = ("ID", "SESSION", "DIRECTION", "LOCAL", "REMOTE", "STATUS", "STARTED", "TALK", "COST")
    return format_table(headers, rows)


async def _show_call(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    call = await sautikit.get_call(args.call_id)
    if args.json:
        _print_json(call)
        return 0
    fields = [
        ("id", call.id),
        ("session", or_dash(call.session_id)),
        ("direction", or_dash(call.direction)),
        ("local", or_dash(call.local_e164)),
        ("remote", or_dash(call.remote_e164)),
        ("status", call.status + (f" ({call.failure_code})" if call.failure_code else "")),
        ("started", or_dash(call.started_at and call.started_at.isoformat())),
        ("answered", or_dash(call.answered_at and call.answered_at.isoformat())),
        ("ended", or_dash(call.ended_at and call.ended_at.isoformat())),
        ("duration", f"{call.duration_seconds:g}s" if call.duration_seconds is not None else "-"),
        ("cost", format_money(call.cost_minor, call.cost_currency)),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name.ljust(width)}  {value}")
    print(f"events ({len(call.events)}):")
    for event in call.events:
        when = event.at.isoformat() if event.at else "-"
        print(f"  {when}  {event.kind}")
    return 0


async def _list_calls(sautikit: SautikitClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    if args.all:
        records = [call async for call in sautikit.iter_calls(limit=args.limit)]
        next_cursor: str | None = None
    else:
        page = await sautikit.list_calls(limit=args.limit, cursor=args.cursor)
        records, next_cursor = list(page.data), page.next_cursor
    if args.json:
        _print_json({"data": records, "next_cursor": next_cursor})
        return 0
    if not records:
        print("no calls")
        return 0
    print(_calls_table(records))
    if next_cursor:
        print(f"more: orchestrator calls list --cursor {next_cursor}")
    return 0
