"""The engine's document store: files kept as Camunda 8.7+ keeps them, addressed by references
`{"camunda.document.type": "camunda", storeId, documentId, contentHash, metadata}`.

Content lives under `<data>/documents/<documentId>` with its metadata beside it as JSON, or in memory when the
engine has no data directory. The content hash is the SHA-256 of the bytes in hex, as Camunda's local store
computes it, and a download must name it: a reference whose hash no longer matches is refused, so a process
never reads different bytes than the ones it was given.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STORE_ID = "devkit"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


class DocumentError(Exception):
    """A document call that cannot succeed; `code` is the engine's error code (NOT_FOUND, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Document:
    content: bytes
    metadata: dict[str, Any]
    content_hash: str


def reference(document_id: str, content_hash: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "camunda.document.type": "camunda",
        "storeId": STORE_ID,
        "documentId": document_id,
        "contentHash": content_hash,
        "metadata": metadata,
    }


class DocumentStore:
    def __init__(self, root: Path | None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._memory: dict[str, Document] = {}
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def create(self, content: bytes, metadata: dict[str, Any], document_id: str | None = None) -> dict[str, Any]:
        if len(content) > self.max_bytes:
            raise DocumentError(
                "PAYLOAD_TOO_LARGE",
                f"The document is {len(content)} bytes, over the store's limit of {self.max_bytes} bytes",
            )
        document_id = document_id or str(uuid.uuid4())
        self._check_id(document_id)
        if self._exists(document_id):
            raise DocumentError("ALREADY_EXISTS", f"A document with id '{document_id}' already exists")
        content_hash = hashlib.sha256(content).hexdigest()
        stored = {**metadata, "size": len(content)}
        document = Document(content, stored, content_hash)
        if self.root is None:
            self._memory[document_id] = document
        else:
            (self.root / document_id).write_bytes(content)
            meta = {"metadata": stored, "contentHash": content_hash}
            (self.root / f"{document_id}.json").write_text(json.dumps(meta), encoding="utf-8")
        return reference(document_id, content_hash, stored)

    def get(self, document_id: str, store_id: str | None, content_hash: str | None) -> Document:
        if store_id not in (None, "", STORE_ID):
            raise DocumentError("NOT_FOUND", f"No document store with id '{store_id}' (this engine's is '{STORE_ID}')")
        document = self._load(document_id)
        if _expired(document.metadata.get("expiresAt")):
            self.delete(document_id)
            raise DocumentError("NOT_FOUND", f"The document with id '{document_id}' has expired")
        if content_hash and content_hash != document.content_hash:
            raise DocumentError("INVALID_ARGUMENT", f"The content hash of document '{document_id}' does not match")
        return document

    def delete(self, document_id: str) -> None:
        self._load(document_id)
        if self.root is None:
            self._memory.pop(document_id, None)
        else:
            (self.root / document_id).unlink(missing_ok=True)
            (self.root / f"{document_id}.json").unlink(missing_ok=True)

    def _load(self, document_id: str) -> Document:
        self._check_id(document_id)
        if not self._exists(document_id):
            raise DocumentError("NOT_FOUND", f"The document with id '{document_id}' does not exist")
        if self.root is None:
            return self._memory[document_id]
        meta = json.loads((self.root / f"{document_id}.json").read_text(encoding="utf-8"))
        return Document((self.root / document_id).read_bytes(), meta["metadata"], meta["contentHash"])

    def _exists(self, document_id: str) -> bool:
        if self.root is None:
            return document_id in self._memory
        return (self.root / f"{document_id}.json").is_file()

    @staticmethod
    def _check_id(document_id: str) -> None:
        # The id becomes a file name: only plain names, so no id can reach outside the store's directory.
        if not _DOCUMENT_ID.match(document_id) or document_id.endswith(".json"):
            raise DocumentError("INVALID_ARGUMENT", f"'{document_id}' is not a document id")


def _expired(expires_at: Any) -> bool:
    if not isinstance(expires_at, str) or not expires_at:
        return False
    try:
        moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment <= datetime.now(UTC)
