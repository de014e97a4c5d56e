"""Chunking long texts before embedding them (Elasticsearch's `word` and `sentence` strategies)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from hf_connector.huggingface.chunking import Chunk, chunk_texts, sentence_chunks, word_chunks


def _numbered_words(count: int) -> str:
    return " ".join(f"w{i}" for i in range(count))


def test_a_short_text_is_one_chunk_with_normalised_whitespace() -> None:
    assert word_chunks("  one   two\nthree ", max_words=10, overlap=2) == ["one two three"]


def test_an_empty_text_gives_no_chunk() -> None:
    assert word_chunks("   ", max_words=10, overlap=2) == []
    assert sentence_chunks("", max_words=10, sentence_overlap=1) == []


def test_word_windows_share_the_overlap_and_cover_every_word() -> None:
    chunks = word_chunks(_numbered_words(25), max_words=10, overlap=3)
    windows = [chunk.split() for chunk in chunks]
    assert all(len(window) <= 10 for window in windows)
    for before, after in pairwise(windows):
        assert before[-3:] == after[:3]
    covered = {word for window in windows for word in window}
    assert covered == {f"w{i}" for i in range(25)}
    assert windows[-1][-1] == "w24"


def test_an_overlap_larger_than_half_the_chunk_is_capped_so_chunks_advance() -> None:
    chunks = word_chunks(_numbered_words(40), max_words=10, overlap=9)
    # Capped at 5: each chunk starts 5 words after the previous one; the text is finite, so it ends.
    starts = [chunk.split()[0] for chunk in chunks]
    assert starts[:3] == ["w0", "w5", "w10"]
    assert chunks[-1].split()[-1] == "w39"


def test_sentences_are_packed_and_repeat_the_last_sentence_of_the_previous_chunk() -> None:
    text = "One two three. Four five six! Seven eight nine? Ten eleven twelve."
    chunks = sentence_chunks(text, max_words=6, sentence_overlap=1)
    assert chunks == [
        "One two three. Four five six!",
        "Four five six! Seven eight nine?",
        "Seven eight nine? Ten eleven twelve.",
    ]


def test_sentences_without_overlap_do_not_repeat() -> None:
    text = "One two three. Four five six! Seven eight nine?"
    assert sentence_chunks(text, max_words=6, sentence_overlap=0) == [
        "One two three. Four five six!",
        "Seven eight nine?",
    ]


def test_chunks_remember_which_input_they_came_from() -> None:
    chunks = chunk_texts(["a b c d e f g h i j k l", "short"], "word", max_words=10, overlap=0, sentence_overlap=0)
    assert chunks == [
        Chunk(0, 0, "a b c d e f g h i j"),
        Chunk(0, 1, "k l"),
        Chunk(1, 0, "short"),
    ]


@pytest.mark.parametrize("strategy", ["word", "sentence"])
def test_every_chunk_respects_the_word_limit_for_ordinary_sentences(strategy: str) -> None:
    text = " ".join(f"Sentence number {i} has six words." for i in range(30))
    chunks = chunk_texts([text], strategy, max_words=20, overlap=5, sentence_overlap=1)
    assert len(chunks) > 1
    assert all(len(chunk.text.split()) <= 20 for chunk in chunks)
    assert [chunk.chunk_index for chunk in chunks] == list(range(len(chunks)))
