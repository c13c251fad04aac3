"""Settings: a YAML file with ${ENV} interpolation, or the environment alone.

Every mistake is reported with the file, the field and the reason, before anything starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

DEFAULT_CONFIG_FILE = "crossway.yaml"
ENV_PREFIX = "CROSSWAY_"


class ConfigError(Exception):
    """A configuration mistake: where it is and what is wrong."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {field}: {reason}" if field else f"{source}: {reason}"
            for field, reason in problems
        ]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeoutConfig(_Strict):
    connect: float = Field(10.0, gt=0)
    # from sending the request to the first byte of the answer's body (None: `read`)
    first_byte: float | None = Field(None, gt=0)
    # the longest silence allowed while an answer arrives (between stream chunks)
    read: float = Field(600.0, gt=0)
    # from sending the request to the last byte of the answer (streams included)
    total: float | None = Field(None, gt=0)


class ProviderConfig(_Strict):
    type: str
    api_key: SecretStr | None = None
    base_url: str | None = None
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # models this provider serves beyond the catalog's: a list of ids, or {public id: upstream id}
    models: list[str] | dict[str, str] = Field(default_factory=list)
    # serve every catalog model whose vendors include this provider's type; None: vendor default
    catalog_models: bool | None = None
    # ask for usage in streams (stream_options.include_usage); None: the vendor's default
    stream_usage: bool | None = None
    timeout: TimeoutConfig = Field(default_factory=lambda: TimeoutConfig())
    # a CA bundle to verify the upstream's TLS certificate (a private CA, a self-signed server)
    ca_file: str | None = None
    # idle keep-alive connections kept open per upstream host
    max_connections: int = Field(1000, ge=1)
    # Vertex AI: the Google Cloud project and region, and a service-account key file
    # (else GOOGLE_APPLICATION_CREDENTIALS; or `api_key` for Vertex's API-key mode)
    project: str | None = None
    location: str | None = None
    credentials_file: str | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/") if value else value


class DeploymentConfig(_Strict):
    provider: str
    model: str | None = None  # the upstream's name for it; default: the catalog's or the public id
    weight: float = Field(1.0, gt=0)
    priority: int = 0  # lower is preferred; a higher tier is used only when the lower is out


class ModelConfig(_Strict):
    deployments: list[DeploymentConfig] = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)


class MediaFetchConfig(_Strict):
    """Images and PDFs given by URL, fetched by Crossway for upstreams that need the bytes
    (Google AI Studio). Never from private networks unless allowed here."""

    max_bytes: int = Field(20 * 1024 * 1024, ge=1)
    timeout: float = Field(10.0, gt=0)
    allow_private: bool = False
    private_hosts: list[str] = Field(default_factory=list)


STRATEGIES = ("weighted", "least-busy", "lowest-latency", "lowest-cost")


class RoutingConfig(_Strict):
    default_model: str | None = None
    # how to order the healthy deployments of one priority tier
    strategy: str = "weighted"
    # after every deployment of a model failed, try them all again this many times
    retries: int = Field(2, ge=0, le=10)
    # the wait before a retry: initial * 2^n, at most backoff_max, less up to `jitter` of it
    backoff_initial: float = Field(0.25, ge=0)
    backoff_max: float = Field(4.0, ge=0)
    jitter: float = Field(0.25, ge=0, le=1)
    # an upstream's retry-after is honoured up to this long; a longer one skips the retry
    max_retry_after: float = Field(10.0, ge=0)
    # models to try when a model's deployments are all exhausted: for every model (a list)
    # or per model ({model: [fallbacks]})
    fallback_models: list[str] | dict[str, list[str]] = Field(default_factory=list)
    # circuit breaker: open after this many failures in a row, or when at least
    # `min_requests` in the last `window_seconds` failed at `failure_rate` or more
    failure_threshold: int = Field(3, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    min_requests: int = Field(10, ge=1)
    window_seconds: float = Field(30.0, gt=0)
    # how long an open breaker keeps a deployment out before a probe is let through; each
    # failed probe doubles it, up to `max_cooldown_seconds`
    cooldown_seconds: float = Field(30.0, ge=0)
    max_cooldown_seconds: float = Field(300.0, ge=0)

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, value: str) -> str:
        if value not in STRATEGIES:
            raise ValueError(f"must be one of {', '.join(STRATEGIES)}, got {value!r}")
        return value

    def fallbacks_for(self, model: str) -> list[str]:
        chain = self.fallback_models
        found = chain.get(model, []) if isinstance(chain, dict) else chain
        return [m for m in found if m != model]


SERVER_NAMES = ("builtin", "uvicorn", "granian")


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    # Crossway's own HTTP/1.1 server, or uvicorn or granian (docs/architecture.md)
    server: str = "builtin"
    # an idle keep-alive connection is closed after this long
    keep_alive_timeout: float = Field(30.0, gt=0, le=3600)
    # on SIGTERM, requests in flight get this long to finish before they are cancelled
    shutdown_timeout: float = Field(30.0, ge=0, le=3600)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if value not in SERVER_NAMES:
            raise ValueError(f"must be one of {', '.join(SERVER_NAMES)}, got {value!r}")
        return value


class Settings(_Strict):
    database_url: str = "sqlite:///crossway.db"
    redis_url: str | None = None
    # the start of every Redis key Crossway writes: gateways of separate deployments can share
    # one Redis with prefixes of their own
    redis_prefix: str = Field("cw", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    master_key: SecretStr | None = None
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=lambda: RoutingConfig())
    media_fetch: MediaFetchConfig = Field(default_factory=lambda: MediaFetchConfig())
    server: ServerConfig = Field(default_factory=lambda: ServerConfig())
    log_requests: bool = True
    # write every request's usage record to the database (off: the log lines only)
    usage_ledger: bool = True
    # the longest a usage record waits to be written (a whole batch of 500 goes at once):
    # what a hard kill can lose; longer means fewer, fuller batches at low traffic
    usage_flush_seconds: float = Field(0.1, gt=0, le=60)
    # run pending database migrations when `serve` starts (else: `crossway db upgrade`)
    migrate_on_start: bool = True
    # how often each process reloads virtual keys from the store
    key_refresh_seconds: float = Field(5.0, gt=0)
    # where the settings came from, for messages ("crossway.yaml", "environment")
    source: str = Field("environment", exclude=True)

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
                raise ValueError(f"provider name {name!r} may use letters, digits, '_', '.', '-'")
        return value


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _hide_refs(text: str) -> tuple[str, list[re.Match[str]]]:
    """Swap each ${VAR} for a plain token before parsing, so `{api_key: ${KEY}}` is valid YAML."""
    refs: list[re.Match[str]] = []

    def token(match: re.Match[str]) -> str:
        refs.append(match)
        return f"CWENVREF{len(refs) - 1}X"

    return _ENV_REF.sub(token, text), refs


_TOKEN = re.compile(r"CWENVREF(\d+)X")


def _interpolate(
    node: Any,
    refs: list[re.Match[str]],
    environ: Mapping[str, str],
    path: str,
    errors: list[tuple[str, str]],
) -> Any:
    if isinstance(node, dict):
        return {
            k: _interpolate(v, refs, environ, f"{path}.{k}" if path else str(k), errors)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(v, refs, environ, f"{path}[{i}]", errors) for i, v in enumerate(node)]
    if isinstance(node, str) and "CWENVREF" in node:

        def replace(found: re.Match[str]) -> str:
            ref = refs[int(found.group(1))]
            name, default = ref.group(1), ref.group(2)
            if environ.get(name):
                return environ[name]
            if default is not None:
                return default
            errors.append((path, f"environment variable {name} is not set"))
            return ""

        value = _TOKEN.sub(replace, node)
        return None if value == "" else value
    return node


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """CROSSWAY_SERVER__PORT=9000 sets server.port; values are read as YAML scalars."""
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "CROSSWAY_CONFIG":
            continue
        parts = [p.lower() for p in key[len(ENV_PREFIX) :].split("__") if p]
        if not parts:
            continue
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        try:
            value = yaml.safe_load(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        # keys and secrets stay strings even when they look like numbers
        node[parts[-1]] = raw if parts[-1] in ("master_key", "api_key") else value


def _validate(data: dict[str, Any], source: str) -> Settings:
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            reason = err["msg"]
            if err["type"] == "extra_forbidden":
                reason = "unknown field"
            problems.append((field, reason))
        raise ConfigError(source, problems) from None
    settings.source = source
    return settings


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from `path`, $CROSSWAY_CONFIG, ./crossway.yaml, or the environment alone."""
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get("CROSSWAY_CONFIG") or (
            DEFAULT_CONFIG_FILE if Path(DEFAULT_CONFIG_FILE).is_file() else None
        )
    data: dict[str, Any]
    if path is None:
        from crossway.providers import providers_from_environment

        source = "environment"
        data = {"providers": providers_from_environment(env)}
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(source, [("", f"cannot read the file: {exc.strerror}")]) from None
        text, refs = _hide_refs(text)
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ConfigError(source, [("", f"{where}not valid YAML ({problem})")]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(source, [("", "the top level must be a mapping of settings")])
        errors: list[tuple[str, str]] = []
        data = _interpolate(loaded, refs, env, "", errors)
        if errors:
            raise ConfigError(source, errors)
    _env_overrides(data, env)
    settings = _validate(data, source)
    check_references(settings)
    return settings


def check_references(settings: Settings) -> None:
    """Cross-field checks: provider types exist, deployments name known providers."""
    from crossway.providers import PROVIDER_TYPES

    problems: list[tuple[str, str]] = []
    for name, provider in settings.providers.items():
        cls = PROVIDER_TYPES.get(provider.type)
        if cls is None:
            known = ", ".join(sorted(PROVIDER_TYPES))
            problems.append(
                (
                    f"providers.{name}.type",
                    f"unknown provider type {provider.type!r}; known types: {known}",
                )
            )
            continue
        problems.extend(
            (f"providers.{name}.{field}", reason) for field, reason in cls.check_config(provider)
        )
    for model, cfg in settings.models.items():
        for i, dep in enumerate(cfg.deployments):
            if dep.provider not in settings.providers:
                known = ", ".join(sorted(settings.providers)) or "none configured"
                problems.append(
                    (
                        f"models.{model}.deployments[{i}].provider",
                        f"unknown provider {dep.provider!r}; configured: {known}",
                    )
                )
    for alias, target in settings.aliases.items():
        if alias == target:
            problems.append((f"aliases.{alias}", "an alias cannot point to itself"))
    if problems:
        raise ConfigError(settings.source, problems)
