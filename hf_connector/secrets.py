"""Secret placeholders (`{{secrets.NAME}}`, `<<secrets.NAME>>`), where their values come from, and masking.

Resolution walks every string of a job's variables and headers before anything else looks at them.
Every value resolved is remembered by the `Masker`, which then scrubs it from every sink: log lines,
incident messages, error variables and results (including whatever a remote server echoes back).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from dotenv import dotenv_values

logger = logging.getLogger(__name__)

PLACEHOLDER = re.compile(
    r"\{\{\s*secrets\.(?P<curly>[A-Za-z0-9_.\-]+)\s*\}\}|<<\s*secrets\.(?P<angle>[A-Za-z0-9_.\-]+)\s*>>"
)
MASK = "***"
# Values shorter than this are not masked: scrubbing every "a" or "1" would garble results, and
# a secret that short offers no protection to begin with.
MIN_MASKED_LENGTH = 4


class SecretProvider(Protocol):
    """A source of secret values. Return None when the secret is not known to this provider."""

    name: str

    def get(self, secret_name: str) -> str | None: ...

    def where(self, secret_name: str) -> str:
        """Where an operator would define this secret for this provider."""
        ...


class EnvironmentSecrets:
    """Environment variables with a prefix, so that a process model cannot read the worker's own settings."""

    name = "environment"

    def __init__(self, prefix: str = "SECRET_", environ: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self._environ = os.environ if environ is None else environ

    def get(self, secret_name: str) -> str | None:
        return self._environ.get(self.prefix + secret_name)

    def where(self, secret_name: str) -> str:
        return f"environment variable {self.prefix}{secret_name}"


class DirectorySecrets:
    """One file per secret, as Docker and Kubernetes mount them (`/run/secrets/NAME`)."""

    name = "directory"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, secret_name: str) -> str | None:
        path = self.directory / secret_name
        if path.parent != self.directory or not path.is_file():
            return None
        return path.read_text(encoding="utf-8").rstrip("\r\n")

    def where(self, secret_name: str) -> str:
        return f"file {self.directory / secret_name}"


class DotenvSecrets:
    """A dotenv file, read once; names are looked up as they are (no prefix)."""

    name = "dotenv"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values = {k: v for k, v in dotenv_values(path).items() if v is not None}

    def get(self, secret_name: str) -> str | None:
        return self._values.get(secret_name)

    def where(self, secret_name: str) -> str:
        return f"{secret_name}=... in {self.path}"


class MissingSecretError(Exception):
    def __init__(self, secret_name: str, places: list[str]) -> None:
        advice = f": define it for the worker as {' or '.join(places)}" if places else ""
        super().__init__(f"Secret with name '{secret_name}' is not available{advice}")
        self.secret_name = secret_name


class Masker:
    """Replaces every known secret value with `***`; thread-safe, shared by the whole worker."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._added: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        # Every job resolves the same few secrets again: a value added before costs one set lookup.
        new = [value for value in values if value not in self._added]
        if not new:
            return
        fresh = {
            form
            for value in new
            if len(value) >= MIN_MASKED_LENGTH
            for form in _echoed_forms(value)
            if form not in self._values
        }
        with self._lock:
            if fresh:
                self._values |= fresh
                # Longest first, so a secret that contains another is masked whole.
                alternatives = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in alternatives))
            self._added.update(new)  # only once its pattern is in place

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def mask_data(self, data: Any) -> Any:
        """A copy of JSON-like data with every string (keys included) masked."""
        if self._pattern is None:
            return data
        return self._mask_data(data)

    def _mask_data(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, dict):
            return {self.mask(k) if isinstance(k, str) else k: self._mask_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self._mask_data(item) for item in data]
        return data


def _echoed_forms(value: str) -> set[str]:
    """The value itself and the form it takes once a server echoes it inside a JSON string."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


class SecretResolver:
    """Replaces placeholders using the providers in order (first hit wins) and feeds the masker."""

    def __init__(self, providers: list[SecretProvider], masker: Masker) -> None:
        self.providers = providers
        self.masker = masker

    def lookup(self, secret_name: str) -> str:
        for provider in self.providers:
            value = provider.get(secret_name)
            if value is not None:
                self.masker.add([value])
                return value
        raise MissingSecretError(secret_name, [provider.where(secret_name) for provider in self.providers])

    def resolve(self, data: Any) -> Any:
        """A copy of JSON-like data with placeholders in every string (keys included, as Camunda resolves the
        variables' JSON text) replaced; raises MissingSecretError."""
        if isinstance(data, str):
            return self._resolve_text(data) if ("secrets." in data) else data
        if isinstance(data, Mapping):
            return {self.resolve(key): self.resolve(value) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.resolve(item) for item in data]
        return data

    def _resolve_text(self, text: str) -> str:
        return PLACEHOLDER.sub(lambda m: self.lookup(m.group("curly") or m.group("angle")), text)


def build_providers(env_prefix: str, directory: Path | None, dotenv: Path | None) -> list[SecretProvider]:
    providers: list[SecretProvider] = [EnvironmentSecrets(env_prefix)]
    if directory is not None:
        providers.append(DirectorySecrets(directory))
    if dotenv is not None:
        providers.append(DotenvSecrets(dotenv))
    return providers
