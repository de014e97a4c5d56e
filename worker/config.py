"""Worker configuration, read from the environment (and an optional `.env` file) with pydantic-settings.

Standard names are kept where users already know them (`ZEEBE_ADDRESS`, `HF_TOKEN`, `CAMUNDA_CLIENT_ID`,
the legacy `ZEEBE_CLIENT_ID`, ...); everything specific to this connector starts with `HF_CONNECTOR_`.
Credentials are `SecretStr`, so they never show in a `repr`, a log line or an error.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, FilePath, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.http_core import tls_context
from worker.http_proxy import ProxyConfigurationError, proxy_routes

DEFAULT_ROUTER = "https://router.huggingface.co"
logger = logging.getLogger(__name__)


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True, frozen=True
    )

    # --- Zeebe connection -------------------------------------------------------------------------
    zeebe_address: str | None = Field(default=None, validation_alias=_env("ZEEBE_ADDRESS", "ZEEBE_GATEWAY_ADDRESS"))
    zeebe_tls: bool = Field(default=False, validation_alias=_env("HF_CONNECTOR_ZEEBE_TLS", "ZEEBE_TLS"))
    zeebe_ca_certificate: Path | None = Field(
        default=None, validation_alias=_env("ZEEBE_CA_CERTIFICATE_PATH", "ZEEBE_CERTIFICATE_PATH")
    )
    camunda_client_id: str | None = Field(default=None, validation_alias=_env("CAMUNDA_CLIENT_ID", "ZEEBE_CLIENT_ID"))
    camunda_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("CAMUNDA_CLIENT_SECRET", "ZEEBE_CLIENT_SECRET")
    )
    camunda_oauth_url: str | None = Field(
        default=None, validation_alias=_env("CAMUNDA_OAUTH_URL", "ZEEBE_AUTHORIZATION_SERVER_URL")
    )
    camunda_token_audience: str | None = Field(
        default=None, validation_alias=_env("CAMUNDA_TOKEN_AUDIENCE", "ZEEBE_TOKEN_AUDIENCE")
    )
    camunda_cluster_id: str | None = Field(default=None, validation_alias=_env("CAMUNDA_CLUSTER_ID"))
    camunda_cluster_region: str | None = Field(default=None, validation_alias=_env("CAMUNDA_CLUSTER_REGION"))

    # --- Worker tuning -----------------------------------------------------------------------------
    job_type: str = Field(default="hugging-face", min_length=1, validation_alias=_env("HF_CONNECTOR_JOB_TYPE"))
    worker_name: str = Field(default="hf-connector", validation_alias=_env("HF_CONNECTOR_WORKER_NAME"))
    max_jobs: int = Field(default=32, ge=1, le=1000, validation_alias=_env("HF_CONNECTOR_MAX_JOBS"))
    max_jobs_active: int | None = Field(
        default=None, ge=1, le=2000, validation_alias=_env("HF_CONNECTOR_MAX_JOBS_ACTIVE")
    )
    job_timeout_seconds: float = Field(default=300, ge=10, validation_alias=_env("HF_CONNECTOR_JOB_TIMEOUT_SECONDS"))
    stream_enabled: bool = Field(default=False, validation_alias=_env("HF_CONNECTOR_STREAM_ENABLED"))
    shutdown_grace_seconds: float = Field(
        default=30, ge=0, validation_alias=_env("HF_CONNECTOR_SHUTDOWN_GRACE_SECONDS")
    )
    max_message_chars: int = Field(default=6000, ge=200, validation_alias=_env("HF_CONNECTOR_MAX_MESSAGE_CHARS"))

    # --- Hugging Face ------------------------------------------------------------------------------
    hf_inference_endpoint: str = Field(default=DEFAULT_ROUTER, validation_alias=_env("HF_INFERENCE_ENDPOINT"))
    hf_token: SecretStr | None = Field(default=None, validation_alias=_env("HF_TOKEN"))
    default_read_timeout_seconds: float = Field(
        default=120, gt=0, le=3600, validation_alias=_env("HF_CONNECTOR_READ_TIMEOUT_SECONDS")
    )
    max_response_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, validation_alias=_env("HF_CONNECTOR_MAX_RESPONSE_BYTES")
    )
    max_input_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, validation_alias=_env("HF_CONNECTOR_MAX_INPUT_BYTES")
    )
    requests_per_minute: int = Field(default=3000, ge=0, validation_alias=_env("HF_CONNECTOR_REQUESTS_PER_MINUTE"))
    overload_backoff_seconds: float = Field(
        default=10, ge=0, validation_alias=_env("HF_CONNECTOR_OVERLOAD_BACKOFF_SECONDS")
    )
    max_retry_after_seconds: float = Field(
        default=300, ge=0, validation_alias=_env("HF_CONNECTOR_MAX_RETRY_AFTER_SECONDS")
    )

    # --- Outbound requests -------------------------------------------------------------------------
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("HF_CONNECTOR_ALLOWED_HOSTS")
    )
    blocked_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("HF_CONNECTOR_BLOCKED_HOSTS")
    )
    follow_redirects: bool = Field(default=False, validation_alias=_env("HF_CONNECTOR_FOLLOW_REDIRECTS"))
    ca_bundle: FilePath | None = Field(default=None, validation_alias=_env("HF_CONNECTOR_CA_BUNDLE"))

    # --- Secrets -----------------------------------------------------------------------------------
    secret_env_prefix: str = Field(default="SECRET_", validation_alias=_env("HF_CONNECTOR_SECRET_ENV_PREFIX"))
    secrets_dir: Path | None = Field(default=Path("/run/secrets"), validation_alias=_env("HF_CONNECTOR_SECRETS_DIR"))
    secrets_dotenv: Path | None = Field(default=None, validation_alias=_env("HF_CONNECTOR_SECRETS_DOTENV"))

    # --- Operations --------------------------------------------------------------------------------
    http_host: str = Field(default="0.0.0.0", validation_alias=_env("HF_CONNECTOR_HTTP_HOST"))
    http_port: int = Field(default=8081, ge=0, le=65535, validation_alias=_env("HF_CONNECTOR_HTTP_PORT"))
    log_format: Literal["text", "json"] = Field(default="text", validation_alias=_env("HF_CONNECTOR_LOG_FORMAT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("HF_CONNECTOR_LOG_LEVEL", "LOG_LEVEL")
    )
    liveness_grace_seconds: float = Field(
        default=300, gt=0, validation_alias=_env("HF_CONNECTOR_LIVENESS_GRACE_SECONDS")
    )

    @field_validator("allowed_hosts", "blocked_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        """A JSON list, or the friendlier comma-separated form."""
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [h.strip() for h in text.split(",") if h.strip()]
        return value

    @model_validator(mode="after")
    def _oauth_settings_come_together(self) -> Settings:
        oauth = [self.camunda_client_id, self.camunda_client_secret]
        if any(oauth) and not all(oauth):
            raise ValueError("CAMUNDA_CLIENT_ID and CAMUNDA_CLIENT_SECRET must be set together")
        if self.camunda_client_id and not (self.camunda_oauth_url or self.camunda_cluster_id):
            raise ValueError(
                "OAuth client credentials need CAMUNDA_OAUTH_URL (self-managed) or CAMUNDA_CLUSTER_ID (SaaS)"
            )
        if self.max_jobs_active is not None and self.max_jobs_active < self.max_jobs:
            raise ValueError(
                f"HF_CONNECTOR_MAX_JOBS_ACTIVE ({self.max_jobs_active}) must be at least HF_CONNECTOR_MAX_JOBS "
                f"({self.max_jobs}): it counts the jobs being handled plus those waiting for a free slot"
            )
        if not self.hf_inference_endpoint.startswith(("https://", "http://")):
            raise ValueError("HF_INFERENCE_ENDPOINT must be an http(s) URL such as https://router.huggingface.co")
        return self

    @property
    def jobs_held(self) -> int:
        """Jobs activated and held at once: those being handled plus those waiting for a free slot."""
        return self.max_jobs_active if self.max_jobs_active is not None else 2 * self.max_jobs

    @property
    def router_url(self) -> str:
        return self.hf_inference_endpoint.rstrip("/")

    def credential_values(self) -> list[str]:
        """The worker's own credentials, which must be masked wherever they could surface."""
        return [s.get_secret_value() for s in (self.hf_token, self.camunda_client_secret) if s is not None]


class ConfigurationError(Exception):
    """An invalid configuration: one line per problem, naming the environment variable to fix."""


def load_settings() -> Settings:
    try:
        settings = Settings()
        proxy_routes(os.environ)
        tls_context(settings.ca_bundle)
    except ValidationError as exc:
        raise ConfigurationError(describe_settings_errors(exc)) from None
    except ProxyConfigurationError as exc:
        raise ConfigurationError(f"Invalid configuration:\n- {exc}") from None
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"Invalid configuration:\n- HF_CONNECTOR_CA_BUNDLE: not a PEM bundle of CA certificates ({exc.reason})"
        ) from None
    if settings.secret_env_prefix == "":
        logger.warning(
            "HF_CONNECTOR_SECRET_ENV_PREFIX is empty: process models can read every environment variable "
            "of the worker as a secret, including its own credentials"
        )
    return settings


def describe_settings_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        env_name = _env_name_of(location)
        prefix = f"{env_name}: " if env_name else ""
        lines.append(f"- {prefix}{error['msg']}")
    return "Invalid configuration:\n" + "\n".join(lines)


def _env_name_of(location: str) -> str | None:
    """The variable the user actually set (errors are located by one alias), else the main name."""
    for name, field in Settings.model_fields.items():
        aliases = field.validation_alias.choices if isinstance(field.validation_alias, AliasChoices) else []
        names = [alias for alias in aliases if isinstance(alias, str)]
        if location.lower() in {name, *(alias.lower() for alias in names)}:
            return next((alias for alias in names if alias in os.environ), names[0] if names else name.upper())
    return location.upper() or None
