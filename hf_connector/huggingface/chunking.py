"""Splitting long texts into chunks before embedding them, as Elasticsearch's inference API does.

`word`: windows of `max_words` words, each sharing `overlap` words with the one before.
`sentence`: sentences packed into chunks of at most `max_words` words, each chunk starting with the
last `sentence_overlap` sentence(s) of the one before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    input_index: int
    chunk_index: int
    text: str


def word_chunks(text: str, max_words: int, overlap: int) -> list[str]:
    words = text.split()
    if len(words) <= max_words:
        return [" ".join(words)] if words else []
    # Elasticsearch caps the overlap at half the chunk so that chunks always advance.
    step = max_words - min(overlap, max_words // 2)
    chunks = []
    for start in range(0, len(words), step):
        chunks.append(" ".join(words[start : start + max_words]))
        if start + max_words >= len(words):
            break
    return chunks


def sentence_chunks(text: str, max_words: int, sentence_overlap: int) -> list[str]:
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    chunks: list[list[str]] = []
    current: list[str] = []
    for sentence in sentences:
        if current and _words([*current, sentence]) > max_words:
            chunks.append(current)
            current = current[-sentence_overlap:] if sentence_overlap else []
            if current and _words([*current, sentence]) > max_words:
                current = []
        current.append(sentence)
    if current:
        chunks.append(current)
    return [" ".join(chunk) for chunk in chunks]


def chunk_texts(texts: list[str], strategy: str, max_words: int, overlap: int, sentence_overlap: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    for input_index, text in enumerate(texts):
        pieces = (
            word_chunks(text, max_words, overlap)
            if strategy == "word"
            else sentence_chunks(text, max_words, sentence_overlap)
        )
        chunks.extend(Chunk(input_index, i, piece) for i, piece in enumerate(pieces))
    return chunks


def _words(sentences: list[str]) -> int:
    return sum(len(s.split()) for s in sentences)
