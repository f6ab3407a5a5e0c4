"""A fake OpenTelemetry collector: the OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf) on loopback.

It decodes each export request with the protocol's own generated classes and keeps the spans, flattened, so
tests can ask what a real collector would have stored.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from orchestrator.app import serve_on_loopback

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, object]
    events: tuple[tuple[str, dict[str, object]], ...]
    status_code: int
    service: str


@dataclass(slots=True)
class FakeCollector:
    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0

    def named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name]


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


def _attributes(pairs) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


@asynccontextmanager
async def fake_otlp_collector() -> AsyncIterator[FakeCollector]:
    """Serve `POST /v1/traces` on a free loopback port; yields the collector with its base URL."""
    collector = FakeCollector()

    async def traces(request: web.Request) -> web.Response:
        if request.content_type != PROTOBUF:
            return web.Response(status=415, text="expected application/x-protobuf")
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        collector.requests += 1
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    collector.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            events=tuple(
                                (event.name, _attributes(event.attributes))
                                for event in span.events
                            ),
                            status_code=span.status.code,
                            service=str(resource.get("service.name")),
                        )
                    )
        reply = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=reply, content_type=PROTOBUF)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with serve_on_loopback(app) as url:
        collector.url = url
        yield collector
