"""`RedisLiveCalls`: several workers (processes or hosts) share live calls on one Redis.

Keys, under the deployment's prefix:

    call:<id>     hash   the webhook's `SharedCall` (start, token, record id, prefetched orders, flags)
    owner:<id>    string the worker holding the call's session; TTL refreshed by that worker's heartbeat
    socket:<id>   string the worker that took the call's media socket (SET NX: one socket per call)
    dial:<id>     string a pending `<Dial>` (JSON), taken once with GETDEL by whichever worker is asked
    held:<w>      set    the calls worker <w> holds, for the others to mark interrupted if it dies
    worker:<w>    string worker <w>'s heartbeat, gone `worker_ttl_s` after its last beat
    workers       set    every worker that has beaten
    to:<w>        channel messages for worker <w> (pub/sub)

Audio never goes through Redis: a media socket stays on the worker that accepted it. Every Redis call
has a deadline; when Redis does not answer, a call goes on where it is (a message is not delivered, a
socket for a call answered elsewhere is refused) and the error is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping

import redis.asyncio as redis
import structlog
from redis.asyncio.client import Pipeline, PubSub

from orchestrator.cluster.live import (
    CallMessage,
    Delivery,
    MessageHandler,
    OrphanHandler,
    SharedCall,
    new_worker_id,
)
from orchestrator.orders import LookupResult, Order
from orchestrator.redis_connection import REDIS_ERRORS
from orchestrator.telephony.call_id import CallId, is_call_id
from orchestrator.telephony.webhook import CallStart
from orchestrator.telephony.xml import DialVerb

__all__ = ["RedisLiveCalls"]

log = structlog.get_logger(__name__)

# A call's shared start outlives any call: it is deleted when the call ends, this is for the lost ones.
CALL_TTL_S = 4 * 3600.0
# An owner key lives this long past its worker's last refresh (the heartbeat refreshes it every third).
OWNER_TTL_S = 30.0
OWNER_REFRESH_BEATS = 10
# A dead worker is marked by one survivor: the others see the mark for this long.
REAP_MARK_S = 60.0
RETRY_SUBSCRIBE_S = 1.0
_HSET_IF_THERE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0
"""


class RedisLiveCalls:
    """This worker's view of the calls every worker on one Redis holds."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        worker_id: str | None = None,
        heartbeat_s: float = 1.0,
        worker_ttl_s: float = 5.0,
        timeout_s: float = 1.0,
    ) -> None:
        if worker_ttl_s <= heartbeat_s:
            raise ValueError("a worker's heartbeat must come more often than it expires")
        self.worker_id = worker_id or new_worker_id()
        self._client = client
        self._prefix = prefix
        self._heartbeat_s = heartbeat_s
        self._worker_ttl_ms = round(worker_ttl_s * 1000)
        self._timeout_s = timeout_s
        self._held: set[CallId] = (
            set()
        )  # calls held here (mirrors held:<me>, for the owner refreshes)
        self._on_message: MessageHandler | None = None
        self._on_orphaned: OrphanHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._beats = 0
        self.operations = 0  # Redis commands sent, for docs/scaling.md's operations per call

    # --- keys -------------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    # --- the webhook and the socket ---------------------------------------------------------

    async def answered(self, call: SharedCall) -> None:
        sid = call.start.call_sid
        fields = {
            "start": json.dumps(dataclasses.asdict(call.start)),
            "token": call.token,
            "answered_by": call.answered_by,
            "record_id": call.record_id,
            "started_at": repr(call.started_at),
        }
        self._held.add(sid)

        def commands(pipe: Pipeline) -> None:
            pipe.hset(
                self._key("call", sid), items=[part for pair in fields.items() for part in pair]
            )
            pipe.expire(self._key("call", sid), round(CALL_TTL_S))
            pipe.set(self._key("owner", sid), self.worker_id, ex=round(OWNER_TTL_S))
            pipe.sadd(self._key("held", self.worker_id), sid)

        await self._run("answered", commands, count=4)

    async def orders_prefetched(self, call_sid: CallId, result: LookupResult) -> None:
        await self._set_field(
            call_sid, "orders", json.dumps(_orders_json(result)), "orders_prefetched"
        )

    async def find(self, call_sid: CallId) -> SharedCall | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                self.operations += 1
                raw = await self._client.hgetall(self._key("call", call_sid))
        except REDIS_ERRORS as exc:
            log.error("live_calls_unavailable", operation="find", error=repr(exc))
            return None
        if not raw or b"start" not in raw:
            return None
        return _shared_call(raw)

    async def claim(self, call_sid: CallId) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                self.operations += 1
                first = await self._client.set(
                    self._key("socket", call_sid), self.worker_id, nx=True, ex=round(CALL_TTL_S)
                )
                if not first:
                    return False
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.set(
                        self._key("owner", call_sid),
                        self.worker_id,
                        ex=round(OWNER_TTL_S),
                        get=True,
                    )
                    pipe.sadd(self._key("held", self.worker_id), call_sid)
                    previous, _ = await pipe.execute()
                self.operations += 2
                self._held.add(call_sid)
                if previous is not None and previous.decode() != self.worker_id:
                    before = previous.decode()
                    async with self._client.pipeline(transaction=False) as pipe:
                        pipe.srem(self._key("held", before), call_sid)
                        pipe.publish(
                            self._key("to", before),
                            _encode(CallMessage(call_sid=call_sid, kind="moved")),
                        )
                        await pipe.execute()
                    self.operations += 2
        except REDIS_ERRORS as exc:
            log.error("live_calls_unavailable", operation="claim", error=repr(exc))
            return False
        return True

    async def finished(self, call_sid: CallId) -> None:
        self._held.discard(call_sid)

        def commands(pipe: Pipeline) -> None:
            pipe.delete(
                *(self._key(kind, call_sid) for kind in ("call", "owner", "socket", "dial"))
            )
            pipe.srem(self._key("held", self.worker_id), call_sid)

        await self._run("finished", commands, count=2)

    async def escalating(self, call_sid: CallId) -> None:
        await self._set_field(call_sid, "escalating", "1", "escalating")

    async def _set_field(self, call_sid: CallId, name: str, value: str, operation: str) -> None:
        """One field of a call's shared start, only while the call is shared: a hash written after
        the call's end would never be deleted."""
        try:
            async with asyncio.timeout(self._timeout_s):
                self.operations += 1
                await self._client.eval(_HSET_IF_THERE, 1, self._key("call", call_sid), name, value)
        except REDIS_ERRORS as exc:
            log.error("live_calls_unavailable", operation=operation, error=repr(exc))

    async def offer_dial(self, call_sid: CallId, dial: DialVerb, *, ttl_s: float) -> None:
        value = json.dumps(dataclasses.asdict(dial))

        def commands(pipe: Pipeline) -> None:
            pipe.set(self._key("dial", call_sid), value, px=max(1, round(ttl_s * 1000)))

        await self._run("offer_dial", commands, count=1)

    async def take_dial(self, call_sid: CallId) -> DialVerb | None:
        try:
            async with asyncio.timeout(self._timeout_s):
                self.operations += 1
                raw = await self._client.getdel(self._key("dial", call_sid))
        except REDIS_ERRORS as exc:
            log.error("live_calls_unavailable", operation="take_dial", error=repr(exc))
            return None
        return DialVerb(**json.loads(raw)) if raw is not None else None

    async def send(self, message: CallMessage) -> Delivery:
        sid = message.call_sid
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.get(self._key("owner", sid))
                    pipe.hmget(self._key("call", sid), ["start", "escalating", "interrupted"])
                    owner, (start, escalating, interrupted) = await pipe.execute()
                self.operations += 2
                if start is None:
                    return Delivery(outcome="unknown")
                flagged = escalating is not None
                if owner is None or interrupted is not None:
                    return Delivery(outcome="orphaned", escalating=flagged)
                holder = owner.decode()
                if holder == self.worker_id:
                    return Delivery(outcome="unknown")  # not in this worker's sessions any more
                self.operations += 1
                if not await self._client.exists(self._key("worker", holder)):
                    return Delivery(outcome="orphaned", escalating=flagged)
                self.operations += 1
                await self._client.publish(self._key("to", holder), _encode(message))
        except REDIS_ERRORS as exc:
            log.error("live_calls_unavailable", operation="send", error=repr(exc))
            return Delivery(outcome="unknown")
        return Delivery(outcome="delivered", escalating=flagged)

    # --- this worker's life: messages in, heartbeat out, dead workers' calls marked ----------

    async def start(self, on_message: MessageHandler, on_orphaned: OrphanHandler) -> None:
        """Subscribe to this worker's channel and beat once before the first call can arrive."""
        self._on_message, self._on_orphaned = on_message, on_orphaned
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        async with asyncio.timeout(max(self._timeout_s, 5.0)):
            await pubsub.subscribe(self._key("to", self.worker_id))
        await self._beat()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._receive(pubsub)), loop.create_task(self._heartbeat())]
        log.info("worker_joined", worker=self.worker_id)

    async def close(self) -> None:
        """Stop beating; calls still held here (a drain past its grace) are left for others to mark."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._held:
            return  # the heartbeat expires and a survivor marks them interrupted

        def commands(pipe: Pipeline) -> None:
            pipe.delete(self._key("worker", self.worker_id), self._key("held", self.worker_id))
            pipe.srem(f"{self._prefix}workers", self.worker_id)

        await self._run("leave", commands, count=2)

    async def _receive(self, pubsub: PubSub) -> None:
        channel = self._key("to", self.worker_id)
        while True:
            try:
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        self._dispatch(item["data"])
            except REDIS_ERRORS as exc:
                log.error("live_calls_unavailable", operation="subscribe", error=repr(exc))
                await asyncio.sleep(RETRY_SUBSCRIBE_S)
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.subscribe(channel)
            except asyncio.CancelledError:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
                raise

    def _dispatch(self, data: bytes) -> None:
        try:
            message = _decode(data)
        except (ValueError, TypeError, KeyError) as exc:
            log.error("live_call_message_invalid", error=repr(exc))
            return
        if message.kind == "moved":
            self._held.discard(message.call_sid)
        if self._on_message is not None:
            self._on_message(message)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._beat()
            except REDIS_ERRORS as exc:
                log.error("live_calls_unavailable", operation="heartbeat", error=repr(exc))

    async def _beat(self) -> None:
        """Say this worker is alive (and refresh its calls' owner keys now and then); mark the dead."""
        self._beats += 1
        refresh = self._beats % OWNER_REFRESH_BEATS == 1
        held = list(self._held) if refresh else []
        async with asyncio.timeout(self._timeout_s + 0.01 * len(held)):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(self._key("worker", self.worker_id), b"1", px=self._worker_ttl_ms)
                pipe.sadd(f"{self._prefix}workers", self.worker_id)
                pipe.smembers(f"{self._prefix}workers")
                for sid in held:
                    pipe.expire(self._key("owner", sid), round(OWNER_TTL_S))
                results = await pipe.execute()
            self.operations += 3 + len(held)
            others = sorted(w for w in map(_text, results[2]) if w != self.worker_id)
            if not others:
                return
            async with self._client.pipeline(transaction=False) as pipe:
                for other in others:
                    pipe.exists(self._key("worker", other))
                alive = await pipe.execute()
            self.operations += len(others)
        for other, beating in zip(others, alive, strict=True):
            if not beating:
                await self._reap(other)

    async def _reap(self, dead: str) -> None:
        """Mark a dead worker's calls interrupted, once (whichever survivor takes the mark first)."""
        async with asyncio.timeout(self._timeout_s * 4):
            self.operations += 2
            if not await self._client.set(
                self._key("reap", dead), self.worker_id, nx=True, ex=round(REAP_MARK_S)
            ):
                return
            held = sorted(_text(m) for m in await self._client.smembers(self._key("held", dead)))
            calls = [CallId(sid) for sid in held if is_call_id(sid)]
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in calls:
                    pipe.exists(self._key("call", sid))
                present = await pipe.execute() if calls else []
            orphaned = [sid for sid, there in zip(calls, present, strict=True) if there]
            async with self._client.pipeline(transaction=False) as pipe:
                for sid in orphaned:
                    pipe.eval(_HSET_IF_THERE, 1, self._key("call", sid), "interrupted", "1")
                    pipe.delete(self._key("owner", sid))
                pipe.delete(self._key("held", dead))
                pipe.srem(f"{self._prefix}workers", dead)
                await pipe.execute()
            self.operations += len(calls) + 2 * len(orphaned) + 2
        log.warning("worker_gone", worker=dead, calls_interrupted=len(orphaned))
        if orphaned and self._on_orphaned is not None:
            await self._on_orphaned(orphaned)

    async def _run(self, operation: str, build: Callable[[Pipeline], None], *, count: int) -> None:
        """Send one pipeline of commands within the deadline; a failure is logged, never raised."""
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._client.pipeline(transaction=False) as pipe:
                    build(pipe)
                    await pipe.execute()
        except REDIS_ERRORS as exc:
            log.error("live_calls_unavailable", operation=operation, error=repr(exc))
        else:
            self.operations += count


def _orders_json(result: LookupResult) -> dict[str, object]:
    return {
        "kind": result.kind,
        "query": result.query,
        "orders": [order.model_dump(mode="json") for order in result.orders],
    }


def _shared_call(raw: Mapping[bytes | str, bytes | str]) -> SharedCall:
    text = {_text(key): _text(value) for key, value in raw.items()}
    start = json.loads(text["start"])
    orders = None
    if text.get("orders"):
        found = json.loads(text["orders"])
        orders = LookupResult(
            kind=found["kind"],
            query=found["query"],
            orders=tuple(Order.model_validate(each) for each in found["orders"]),
        )
    return SharedCall(
        start=CallStart(**{**start, "call_sid": CallId(start["call_sid"])}),
        token=text["token"],
        answered_by=text["answered_by"],
        record_id=text["record_id"],
        started_at=float(text["started_at"]),
        orders=orders,
        escalating="escalating" in text,
        interrupted="interrupted" in text,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _encode(message: CallMessage) -> str:
    return json.dumps(
        {
            "call_sid": message.call_sid,
            "kind": message.kind,
            "state": message.state,
            "signed": message.signed,
            "dial_taken": message.dial_taken,
            "digits": message.digits,
            "fields": dict(message.fields),
            "event_kind": message.event_kind,
            "data": dict(message.data),
        }
    )


def _decode(data: bytes) -> CallMessage:
    raw = json.loads(data)
    sid = str(raw["call_sid"])
    if not is_call_id(sid):
        raise ValueError("not a call id")
    return CallMessage(
        call_sid=CallId(sid),
        kind=raw["kind"],
        state=raw.get("state"),
        signed=bool(raw.get("signed")),
        dial_taken=bool(raw.get("dial_taken")),
        digits=str(raw["digits"]) if raw.get("digits") else None,
        fields={str(k): str(v) for k, v in (raw.get("fields") or {}).items()},
        event_kind=str(raw.get("event_kind") or ""),
        data=dict(raw.get("data") or {}),
    )
