"""Settings from the environment (pydantic-settings). Every name is documented in the README."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, IPvAnyNetwork, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.definition import QUEUE_NAME_RE
from domain.limits import Limits
from domain.messages import DEFAULT_QUEUE
from services.access import ApiToken, api_token_of
from services.application.errors import ConfigurationError
from services.defaults import DEFAULT_API_STR

REDIS_URL_SCHEMES = ("redis", "rediss", "unix")
SECRET_SETTINGS = frozenset({"api_tokens"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    engine_backend: Literal["memory", "redis"] | None = Field(
        default=None,
        description="Where state and messages live. Unset: 'memory' for run and up, 'redis' for the "
        "separately deployed roles (api, orchestrator, worker, web).",
    )
    redis_url: str | None = Field(default=None, description="Overrides REDIS_HOST/PORT/DB when set.")
    redis_host: str = "localhost"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_db: int = Field(default=0, ge=0)
    redis_shards: int = Field(default=4, ge=1, le=1024)
    redis_key_prefix: str = "dag"
    redis_cluster: bool = Field(
        default=False,
        description="Redis Cluster: REDIS_HOST/REDIS_PORT (or REDIS_URL) name any node, the seed.",
    )
    redis_sentinels: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Sentinel mode: the sentinels as host:port, comma-separated; the master is found "
        "(and followed through a failover) by REDIS_SENTINEL_MASTER.",
    )
    redis_sentinel_master: str = Field(default="mymaster", min_length=1)
    redis_wait_replicas: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Each write of the engine waits (WAIT) until this many replicas have it before "
        "the engine goes on (a run start is answered, an entry acknowledged); 0: no waiting.",
    )
    redis_wait_timeout_ms: int = Field(
        default=1000,
        ge=1,
        description="How long a write waits for REDIS_WAIT_REPLICAS; fewer replicas by then fail it.",
    )
    visibility_timeout_seconds: float = Field(default=30.0, gt=0)
    max_deliveries: int = Field(default=5, ge=1)
    shutdown_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM, how long a worker finishes the attempts it holds (and the API its "
        "open requests) before handing them back and exiting.",
    )
    run_retention_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    web_orchestrator_process: bool = Field(
        default=True,
        description="dag-service web on Redis runs its orchestrator in a child process, so that API "
        "load cannot delay transitions; false: both in one process, as in the seed.",
    )
    api_str: str = DEFAULT_API_STR
    api_host: str = "0.0.0.0"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_access_log: bool = Field(
        default=False,
        description="a log line per HTTP request this process serves (the API, and /metrics where "
        "METRICS_PORT is set): uvicorn's access log, at INFO",
    )
    api_enable_docs: bool = True
    backend_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    api_tokens: Annotated[list[ApiToken], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens the API accepts: comma-separated or a JSON list of strings (every "
        'scope), or a JSON list of objects {"name", "token", "scopes"}; empty: no authentication.',
    )
    api_rate_limit_per_second: float = Field(
        default=0.0,
        ge=0,
        description="Requests per second each client (API token, or address without one) may make; "
        "0: no limit.",
    )
    api_rate_limit_burst: int = Field(
        default=0, ge=0, description="Requests a client may make at once; 0: twice the rate (at least 1)."
    )
    max_request_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    api_status_rebuild_spacing: float = Field(
        default=3.0,
        ge=0,
        description="While a run's status holds, its status answer is built again at most once per "
        "this many times its last build's duration (readers meanwhile get the kept answer); 0: "
        "every change of the run is answered at once.",
    )
    worker_concurrency: int = Field(default=64, ge=1, le=10_000)
    cancel_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        le=60,
        description="How often a worker asks whether attempts it holds were cancelled.",
    )
    run_wait_recheck_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="A reader waiting for a run (its event stream, a status request with ?wait=) is "
        "woken by the engine's word of each change; it also reads the run again this often, in case "
        "word was lost (a broken connection to Redis).",
    )
    cancel_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long a cancelled handler may take to stop before its worker abandons it.",
    )
    heartbeat_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="A worker reports at most one heartbeat per attempt this often (or a third of "
        "the node's heartbeat_timeout_seconds when that is shorter), with the latest details.",
    )
    max_heartbeat_details_bytes: int = Field(
        default=4096, ge=1, le=1024 * 1024, description="The largest details a handler's ctx.heartbeat takes."
    )
    default_attempt_timeout_seconds: float = Field(
        default=3600.0,
        gt=0,
        le=30 * 86_400,
        description="The deadline of an attempt of a node that sets neither timeout_seconds nor "
        "heartbeat_timeout_seconds (kept with each definition registered).",
    )
    concurrency_limits: dict[str, Annotated[int, Field(ge=1, le=100_000)]] = Field(
        default_factory=dict,
        description='Limits of concurrency keys, as a JSON object ({"tenant-a": 5}): a key named here '
        "has this limit whatever its nodes' concurrency_limit.",
    )
    concurrency_poll_seconds: float = Field(
        default=0.05,
        gt=0,
        le=10,
        description="How often a worker waiting for a slot of a concurrency key asks again (doubling up "
        "to 1 s while it waits).",
    )
    secrets_dir: Path | None = Field(
        default=None,
        description="A worker reads {{ secrets.NAME }} from the file NAME here (one file per secret, "
        "as Docker and Kubernetes mount them) before the environment.",
    )
    secrets_env_prefix: str = Field(
        default="DAG_SECRET_",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="A worker reads {{ secrets.NAME }} from the variable of this prefix and NAME "
        "upper-cased, '-' as '_' (only variables with the prefix are ever read).",
    )
    worker_handler_modules: str = Field(
        default="", description="Comma-separated modules imported at start to register handlers."
    )
    worker_queues: str = Field(
        default=DEFAULT_QUEUE,
        description="Comma-separated queues (worker pools) a worker takes tasks from.",
    )
    orchestrator_batch_size: int = Field(default=512, ge=1, le=100_000)
    max_nodes: int = Field(default=100_000, ge=1)
    max_edges: int = Field(default=1_000_000, ge=1)
    max_config_bytes: int = Field(default=64 * 1024, ge=1)
    max_nesting_depth: int = Field(default=32, ge=1)
    max_input_bytes: int = Field(default=1024 * 1024, ge=1)
    max_output_bytes: int = Field(default=1024 * 1024, ge=1)
    log_level: str | None = Field(
        default=None,
        description="unset: INFO for the long-running roles (their start-up line shows), WARNING for the "
        "other commands.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text: a time-stamped line for a terminal; json: one object per line."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics at /metrics on this port (orchestrator and worker "
        "processes; the API serves them under its prefix anyway). Unset: no metrics port.",
    )
    metrics_host: str = "0.0.0.0"
    http_max_response_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest response body the http handler reads; a larger one fails the node.",
    )
    http_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the http handler may reach whatever they resolve to (comma-separated).",
    )
    http_allow_networks: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Networks the http handler may reach though not global, e.g. 10.1.0.0/16,127.0.0.1 "
        "(comma-separated).",
    )

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_list(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinel_addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"{address!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _one_redis_topology(self) -> Settings:
        if self.redis_cluster and self.redis_sentinels:
            raise ValueError("REDIS_CLUSTER and REDIS_SENTINELS exclude each other: choose one")
        if self.redis_cluster and self.redis_wait_replicas:
            raise ValueError(
                "REDIS_WAIT_REPLICAS is not offered with REDIS_CLUSTER (a cluster pipeline writes "
                "on several connections, and WAIT counts only its own connection's writes)"
            )
        if self.redis_cluster and self.redis_db:
            raise ValueError("REDIS_DB must be 0 with REDIS_CLUSTER (a cluster has only database 0)")
        return self

    @field_validator("backend_cors_origins", "http_allow_hosts", "http_allow_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _plain_tokens(cls, value: object) -> object:
        """Plain strings (the earlier form) become tokens of every scope; empty ones are dropped."""
        value = comma_separated(value)
        if isinstance(value, list):
            kept = [item for item in value if not (isinstance(item, str) and not item.strip())]
            return [
                api_token_of(item.strip() if isinstance(item, str) else item, n)
                for n, item in enumerate(kept)
            ]
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.strip().upper() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return value.strip().upper()

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in REDIS_URL_SCHEMES or (parts.scheme != "unix" and not parts.hostname):
            raise ValueError(
                "expected a URL such as redis://[:password@]host:6379/0 (schemes redis, rediss, unix)"
            )
        return value.strip()

    def backend_for(self, default: Literal["memory", "redis"]) -> Literal["memory", "redis"]:
        return self.engine_backend or default

    def redis_location_shown(self) -> str:
        """``redis_location()`` without its password, for logs."""
        return without_password(self.redis_location())

    def redis_location(self) -> str:
        if self.redis_url:
            return self.redis_url
        return f"redis://{self.redis_host}:{self.redis_port}/{self.redis_db}"

    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """``REDIS_SENTINELS`` as (host, port) pairs (checked at load)."""
        pairs = (address.rpartition(":") for address in self.redis_sentinels)
        return tuple((host.strip("[]"), int(port)) for host, _, port in pairs)

    def limits(self) -> Limits:
        return Limits(
            max_nodes=self.max_nodes,
            max_edges=self.max_edges,
            max_config_bytes=self.max_config_bytes,
            max_nesting_depth=self.max_nesting_depth,
            max_input_bytes=self.max_input_bytes,
        )

    def rate_burst(self) -> int:
        if self.api_rate_limit_burst:
            return self.api_rate_limit_burst
        return max(1, math.ceil(2 * self.api_rate_limit_per_second))

    @field_validator("worker_queues")
    @classmethod
    def _queue_names(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise ValueError("no queue named")
        for name in names:
            if not QUEUE_NAME_RE.fullmatch(name):
                raise ValueError(f"queue {name!r} is not 1 to 128 letters, digits, '_' or '-'")
        return ",".join(dict.fromkeys(names))

    def queues(self) -> tuple[str, ...]:
        """The queues a worker serves (``WORKER_QUEUES``, ``--queues``)."""
        return tuple(self.worker_queues.split(","))

    def handler_modules(self) -> list[str]:
        return [name.strip() for name in self.worker_handler_modules.split(",") if name.strip()]


def comma_separated(value: object) -> object:
    """A JSON list or a comma-separated string (as the seed accepts for BACKEND_CORS_ORIGINS)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _accepted(name: str) -> str:
    """What a field accepts, from its type and bounds, when the error does not say it."""
    field = Settings.model_fields[name]
    bounds = {
        kind: getattr(item, kind)
        for item in field.metadata
        for kind in ("ge", "gt", "le")
        if hasattr(item, kind)
    }
    if field.annotation is int:
        low, high = bounds.get("ge"), bounds.get("le")
        if low is not None and high is not None:
            return f"an integer from {low} to {high}"
        return f"an integer of at least {low}" if low is not None else "an integer"
    if field.annotation is float:
        return f"a number above {bounds['gt']}" if "gt" in bounds else "a number"
    if field.annotation is bool:
        return "true or false"
    return ""


def describe_invalid(error: ValidationError) -> str:
    """Every problem of a settings ``ValidationError`` on one line: the variable, its value, the
    complaint and what is accepted (never the value of a secret)."""
    problems = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        if not problem["loc"]:  # a rule over several settings: its message names them
            problems.append(message)
            continue
        name = str(problem["loc"][0])
        value: Any = problem.get("input")
        if name in SECRET_SETTINGS:
            shown = ""
        elif name == "redis_url" and isinstance(value, str):
            shown = f"={without_password(value)!r}"
        else:
            shown = f"={value!r}"
        accepted = _accepted(name) if name in Settings.model_fields else ""
        extra = f" (accepted: {accepted})" if accepted and accepted not in message else ""
        problems.append(f"{name.upper()}{shown}: {message}{extra}")
    return "; ".join(problems)


def load_settings(**values: Any) -> Settings:
    """The settings from the environment (and ``values``); a value that cannot be used raises a
    ``ConfigurationError`` of one line instead of pydantic's report."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigurationError(describe_invalid(error)) from None
