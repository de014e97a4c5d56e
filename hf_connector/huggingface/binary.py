"""Binary inputs (images, audio) given as a data URL or as `{data: base64, contentType}`."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+\-]+/[\w.+\-]+)?(?P<params>(;[\w\-]+=[^;,]*)*);base64,(?P<data>.*)$", re.S)


class BinaryInputError(ValueError):
    """The binary input is not valid base64 or has no content type."""


@dataclass(frozen=True, slots=True)
class BinaryInput:
    data: bytes
    content_type: str

    @property
    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def as_binary(value: Any) -> BinaryInput | None:
    """The binary input `value` stands for, or None when it is ordinary JSON."""
    if isinstance(value, str) and value.startswith("data:"):
        match = _DATA_URL.match(value)
        if not match:
            raise BinaryInputError("the data URL is not of the form data:<type>;base64,<data>")
        return BinaryInput(_decode(match["data"]), match["type"] or "application/octet-stream")
    if (
        isinstance(value, dict)
        and set(value) >= {"data", "contentType"}
        and set(value) <= {"data", "contentType", "encoding", "size"}
    ):
        if not isinstance(value["contentType"], str) or "/" not in value["contentType"]:
            raise BinaryInputError("contentType must be a media type such as image/png")
        return BinaryInput(_decode(str(value["data"])), value["contentType"])
    return None


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BinaryInputError("the binary data is not valid base64") from None
