"""Content-Encoding undone a MiB at a time, so that the response size cap stops a decompression bomb early.

The HTTP client hands over the body as it came off the wire (its own decoding would expand a whole chunk
at once); `Decoding` expands gzip and deflate in bounded pieces. Only these two are advertised in
Accept-Encoding; an encoding the worker did not ask for passes as it is.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

ACCEPT_ENCODING = "gzip, deflate"
_MAX_DECODED_PIECE = 1 << 20
_GZIP = {"gzip": True, "x-gzip": True, "deflate": False}


class DecodingError(Exception):
    """The body does not decode as its Content-Encoding says."""


class _ZlibDecoder:
    """gzip, or deflate in its zlib wrapper or raw (servers send both)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._first = True
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> Iterator[bytes]:
        try:
            if self._first and not self._gzip:
                self._first = False
                try:
                    yield from self._expand(data)
                    return
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            yield from self._expand(data)
        except zlib.error as exc:
            raise DecodingError(str(exc)) from None

    def flush(self) -> Iterator[bytes]:
        try:
            rest = self._inflate.flush()
        except zlib.error as exc:
            raise DecodingError(str(exc)) from None
        if rest:
            yield rest

    def _expand(self, data: bytes) -> Iterator[bytes]:
        piece = self._inflate.decompress(data, _MAX_DECODED_PIECE)
        while True:
            if piece:
                yield piece
            tail = self._inflate.unconsumed_tail
            if not tail:
                return
            piece = self._inflate.decompress(tail, _MAX_DECODED_PIECE)


class Decoding:
    """The Content-Encoding steps undone in reverse order."""

    def __init__(self, content_encoding: str) -> None:
        names = [name.strip().lower() for name in content_encoding.split(",")]
        self._steps = [_ZlibDecoder(_GZIP[name]) for name in reversed(names) if name in _GZIP]

    def decode(self, data: bytes) -> Iterator[bytes]:
        return self._through(iter([data]), 0)

    def flush(self) -> Iterator[bytes]:
        for index, step in enumerate(self._steps):
            yield from self._through(step.flush(), index + 1)

    def _through(self, pieces: Iterator[bytes], first_step: int) -> Iterator[bytes]:
        for step in self._steps[first_step:]:
            pieces = _decoded(step, pieces)
        return pieces


def _decoded(step: _ZlibDecoder, pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield from step.decode(piece)
