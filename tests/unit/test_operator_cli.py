"""`orchestrator numbers ...` and `orchestrator calls ...`, run against the fake Sautikit REST API.

The fake runs on a loopback port in a thread with its own event loop, because each command calls
`asyncio.run` itself, as it does from a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from orchestrator.operator_cli import add_operator_commands
from orchestrator.simulator.rest_api import FakeSautikitState, sautikit_rest_app

KEY = "sk_test_sautikit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Platform:
    state: FakeSautikitState
    url: str


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    """The fake Sautikit REST API on 127.0.0.1, with the CLI's environment pointing at it."""
    state = FakeSautikitState()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(sautikit_rest_app(state), access_log=None)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="fake-sautikit", daemon=True)
    thread.start()
    assert ready.wait(10)
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    monkeypatch.setenv("SAUTIKIT_API_KEY", KEY)
    monkeypatch.setenv("SAUTIKIT_BASE_URL", url)
    for name in (
        "SAUTIKIT_CLAIM_STYLE",
        "SAUTIKIT_ROUTING_STYLE",
        "ORCHESTRATOR_PUBLIC_URL",
        "ORCHESTRATOR_ROUTE_VOICE",
    ):
        monkeypatch.delenv(name, raising=False)
    try:
        yield Platform(state=state, url=url)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def run(*argv: str) -> int:
    """Parse and run one command the way `orchestrator` does."""
    parser = argparse.ArgumentParser(prog="orchestrator")
    add_operator_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.run(args))


def claim_one(platform: Platform) -> str:
    """Claim the first inventory number through the CLI and return its id."""
    assert run("numbers", "claim", "inv_ke_0100") == 0
    return next(iter(platform.state.numbers))


# --- help ---------------------------------------------------------------------------------------


def test_numbers_help_lists_every_action(capsys):
    """`orchestrator numbers --help` names available, claim, list, route and release."""
    with pytest.raises(SystemExit) as exit_info:
        run("numbers", "--help")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for action in ("available", "claim", "list", "route", "release"):
        assert action in out


def test_numbers_route_help_explains_the_url_and_the_environment(capsys):
    """A leaf command's help names its flags and the SAUTIKIT_* variables."""
    with pytest.raises(SystemExit):
        run("numbers", "route", "--help")
    out = capsys.readouterr().out
    expected = ("--public-url", "--voice-path", "--json", "SAUTIKIT_API_KEY", "SAUTIKIT_ROUTING_STYLE")
    assert [text for text in expected if text not in out] == []


# --- numbers ------------------------------------------------------------------------------------


def test_numbers_available_prints_an_aligned_table(platform, capsys):
    """Inventory is a table with ids, full numbers and monthly prices."""
    assert run("numbers", "available") == 0
    assert capsys.readouterr().out.splitlines() == [
        "ID           NUMBER         COUNTRY  MONTHLY",
        "inv_ke_0100  +254700000100  KE       KES 500.00",
        "inv_ke_0101  +254700000101  KE       KES 500.00",
        "inv_ke_2020  +254202000020  KE       KES 800.00",
    ]


def test_numbers_available_json_is_for_scripts(platform, capsys):
    """With --json the inventory is a JSON list of objects."""
    assert run("numbers", "available", "--json") == 0
    offers = json.loads(capsys.readouterr().out)
    assert [o["id"] for o in offers] == ["inv_ke_0100", "inv_ke_0101", "inv_ke_2020"]


def test_numbers_claim_prints_the_number_and_the_next_step(platform, capsys):
    """A claim names the number and its id, and says how to route it."""
    number_id = claim_one(platform)
    out = capsys.readouterr().out
    assert f"claimed +254700000100 as {number_id}" in out
    assert f"orchestrator numbers route {number_id}" in out


def test_numbers_claim_inventory_style_uses_the_guides_path(platform):
    """--claim-style inventory claims through POST /v1/numbers/{inventory_id}/claim."""
    assert run("numbers", "claim", "inv_ke_0101", "--claim-style", "inventory") == 0
    assert [r.path for r in platform.state.requests] == ["/v1/numbers/inv_ke_0101/claim"]


def test_numbers_claim_with_empty_wallet_prints_one_error_line(platform, capsys):
    """A 402 is one stderr line with the code and request_id, and exit status 1."""
    platform.state.wallet_minor = 0
    assert run("numbers", "claim", "inv_ke_0100") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("orchestrator: sautikit error: HTTP 402 wallet.insufficient_funds: ")
    assert "(request_id req_" in line


def test_numbers_list_shows_full_numbers_and_routing(platform, capsys):
    """Owned numbers are listed with the full E.164 number and where they route."""
    number_id = claim_one(platform)
    platform.state.numbers[number_id].routing_url = "https://agent.example.com/voice"
    capsys.readouterr()
    assert run("numbers", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NUMBER", "COUNTRY", "STATUS", "ROUTING", "URL"]
    assert lines[1].split() == [
        number_id, "+254700000100", "KE", "active", "https://agent.example.com/voice"
    ]


def test_numbers_list_json_and_empty(platform, capsys):
    """An empty workspace says so in a table and is [] in JSON."""
    assert run("numbers", "list") == 0
    assert "owns no numbers" in capsys.readouterr().out
    assert run("numbers", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []


def test_numbers_route_points_at_public_url_plus_voice_path(platform, capsys):
    """`route` sets the number's routing_url to PUBLIC_URL + /voice with the seed's PATCH."""
    number_id = claim_one(platform)
    assert run("numbers", "route", number_id, "--public-url", "https://agent.example.com/") == 0
    assert platform.state.numbers[number_id].routing_url == "https://agent.example.com/voice"
    assert platform.state.requests[-1].method == "PATCH"
    assert "now routes calls to https://agent.example.com/voice" in capsys.readouterr().out


def test_numbers_route_reads_the_services_settings_from_the_environment(platform, monkeypatch):
    """ORCHESTRATOR_PUBLIC_URL and ORCHESTRATOR_ROUTE_VOICE, as `serve` reads them, make the URL."""
    number_id = claim_one(platform)
    monkeypatch.setenv("ORCHESTRATOR_PUBLIC_URL", "https://shop.example.co.ke")
    monkeypatch.setenv("ORCHESTRATOR_ROUTE_VOICE", "/sautikit/voice")
    assert run("numbers", "route", number_id) == 0
    routed = platform.state.numbers[number_id].routing_url
    assert routed == "https://shop.example.co.ke/sautikit/voice"


def test_numbers_route_put_style_sends_the_events_url(platform, capsys):
    """--routing-style put uses PUT .../routing and also sets the events URL."""
    number_id = claim_one(platform)
    assert (
        run(
            "numbers", "route", number_id,
            "--public-url", "https://agent.example.com",
            "--events-url", "https://agent.example.com/events",
            "--routing-style", "put",
            "--json",
        )
        == 0
    )
    capsys.readouterr()
    number = platform.state.numbers[number_id]
    assert (number.routing_url, number.events_url) == (
        "https://agent.example.com/voice", "https://agent.example.com/events"
    )
    assert platform.state.requests[-1].path == f"/v1/numbers/{number_id}/routing"


def test_numbers_route_without_public_url_is_a_configuration_error(platform, capsys):
    """With no public URL anywhere, nothing is sent and the operator is told what to set."""
    number_id = claim_one(platform)
    sent = len(platform.state.requests)
    assert run("numbers", "route", number_id) == 2
    assert "ORCHESTRATOR_PUBLIC_URL" in capsys.readouterr().err
    assert len(platform.state.requests) == sent


def test_numbers_release_needs_yes(platform, capsys):
    """Without --yes nothing is released; with it the number goes back to the inventory."""
    number_id = claim_one(platform)
    assert run("numbers", "release", number_id) == 2
    assert "--yes" in capsys.readouterr().err
    assert number_id in platform.state.numbers
    assert run("numbers", "release", number_id, "--yes") == 0
    assert f"released {number_id}" in capsys.readouterr().out
    assert platform.state.numbers == {}


def test_numbers_release_unknown_number_is_not_found(platform, capsys):
    """Releasing a number the workspace does not own reports numbers.not_found, exit 1."""
    assert run("numbers", "release", "num_nope", "--yes") == 1
    assert "HTTP 404 numbers.not_found" in capsys.readouterr().err


# --- calls --------------------------------------------------------------------------------------


def test_calls_show_prints_the_record_and_its_events(platform, capsys):
    """`calls show` prints each field on its own line, then the event log."""
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    platform.state.add_call(
        session_id="HD_8f2a91c0",
        started_at=start,
        answered_at=start + timedelta(seconds=4),
        ended_at=start + timedelta(seconds=94),
        cost_minor=350,
        events=[{"kind": "call.answered", "at": "2026-03-02T09:30:04Z"}],
    )
    assert run("calls", "show", "HD_8f2a91c0") == 0
    out = capsys.readouterr().out.splitlines()
    assert "session    HD_8f2a91c0" in out
    assert "remote     +254712345678" in out
    assert "duration   90s" in out
    assert "cost       KES 3.50" in out
    assert out[-2:] == ["events (1):", "  2026-03-02T09:30:04+00:00  call.answered"]


def test_calls_show_json_is_the_record(platform, capsys):
    """With --json, `calls show` prints the record as the API model."""
    call = platform.state.add_call(status="no_answer")
    assert run("calls", "show", call.id, "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["id"], record["status"]) == (call.id, "no_answer")


def test_calls_show_unknown_call_prints_code_and_request_id(platform, capsys):
    """An unknown call is one line on stderr with calls.not_found and the request id, exit 1."""
    assert run("calls", "show", "HD_missing") == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("orchestrator: sautikit error: HTTP 404 calls.not_found: no call HD_")
    assert "request_id req_" in line


def test_calls_list_pages_with_a_printed_cursor(platform, capsys):
    """A page is a table with a hint to the next; --cursor continues where it stopped."""
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    calls = [
        platform.state.add_call(session_id=f"HD_{i:08d}", started_at=start + timedelta(minutes=i))
        for i in range(3)
    ]
    assert run("calls", "list", "--limit", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["ID", "SESSION", "DIRECTION", "LOCAL", "REMOTE", "STATUS"]
    assert [line.split()[1] for line in lines[1:3]] == ["HD_00000002", "HD_00000001"]
    cursor = lines[-1].removeprefix("more: orchestrator calls list --cursor ")
    assert run("calls", "list", "--limit", "2", "--cursor", cursor) == 0
    rest = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in rest[1:]] == [calls[0].id]


def test_calls_list_all_follows_every_page_as_json(platform, capsys):
    """--all --json prints every record across pages and no cursor."""
    ids = {platform.state.add_call().id for _ in range(5)}
    assert run("calls", "list", "--all", "--limit", "2", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert {record["id"] for record in listing["data"]} == ids
    assert listing["next_cursor"] is None


def test_calls_list_empty(platform, capsys):
    """No calls yet says so."""
    assert run("calls", "list") == 0
    assert capsys.readouterr().out.strip() == "no calls"


# --- settings and auth --------------------------------------------------------------------------


def test_missing_api_key_is_a_configuration_error(platform, monkeypatch, capsys):
    """Without SAUTIKIT_API_KEY the command names the variable and exits 2 before any request."""
    monkeypatch.delenv("SAUTIKIT_API_KEY")
    assert run("numbers", "list") == 2
    assert "SAUTIKIT_API_KEY" in capsys.readouterr().err
    assert platform.state.requests == []


def test_bad_api_key_reports_scope_denied(platform, monkeypatch, capsys):
    """A key the platform refuses is reported as 403 api_key.scope_denied."""
    monkeypatch.setenv("SAUTIKIT_API_KEY", "sk_revoked")
    assert run("calls", "list") == 1
    assert "HTTP 403 api_key.scope_denied" in capsys.readouterr().err


def test_base_url_flag_wins_over_the_environment(platform, monkeypatch):
    """--base-url overrides SAUTIKIT_BASE_URL."""
    monkeypatch.setenv("SAUTIKIT_BASE_URL", "http://127.0.0.1:9")
    assert run("numbers", "list", "--base-url", platform.url) == 0
    assert [r.path for r in platform.state.requests] == ["/v1/numbers"]
