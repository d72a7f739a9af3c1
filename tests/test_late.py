"""Late chunking (``embeddings/late.py``): unit vectors pooled from their passage's token vectors."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from embeddings import IndexOutOfDate, IndexSettings, build_index, check_index
from embeddings.late import TokenEncoder, late_chunk_vectors, pool_all, pool_span
from embeddings.paragraphs import Passage
from embeddings.units import embedding_units, passage_embedding_text
from tests.conftest import KeywordEncoder

DOC = "Intro line. The lighthouse opened in 1811 on the rock. Its first keeper was Marie Duval. She kept it lit for years."


class WordTokenEncoder:
    """A context-free fake: each word is one token whose vector is a hashed one-hot; a text's vector is
    the normalised mean of its words' vectors, so pooling a span must give that span's own vector.
    A leading special token with a zero vector stands for ``<s>``; ``window`` cuts texts like a model."""

    name = "fake-words"
    dim = 64
    max_tokens = 256

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self.encoded: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def _word(self, word: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        vector[int(hashlib.md5(word.lower().encode()).hexdigest(), 16) % self.dim] = 1.0
        return vector

    def encode_tokens(self, texts, *, progress=None):
        out = []
        for text in texts:
            words = [m.span() for m in re.finditer(r"\S+", text)][: self.window]
            tokens = np.stack([np.zeros(self.dim, np.float32)] + [self._word(text[s:e]) for s, e in words])
            out.append((tokens, np.array([(0, 0)] + words, dtype=np.int64).reshape(-1, 2)))
        if progress:
            progress(len(texts), len(texts))
        return out

    def encode(self, texts, *, progress=None):
        self.encoded += list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            mean = np.mean([self._word(w) for w in text.split()], axis=0)
            out[i] = mean / np.linalg.norm(mean)
        if progress:
            progress(len(texts), len(texts))
        return out


def passage(text: str = DOC, start: int = 7) -> Passage:
    return Passage("a#1", "a.txt", start, start + len(text), text, title="Harbour")


def test_pool_span_means_only_the_tokens_inside_and_skips_special_tokens():
    tokens = np.array([[9, 9], [1, 0], [1, 0], [0, 2]], dtype=np.float32)  # (4 tokens, dim 2)
    offsets = np.array([[0, 0], [0, 3], [4, 7], [8, 12]])
    assert pool_span(tokens, offsets, 0, 7).tolist() == [1.0, 0.0]  # the (0, 0) special token is not in it
    np.testing.assert_allclose(pool_span(tokens, offsets, 4, 12), np.array([1, 2]) / np.sqrt(5), rtol=1e-6)
    assert pool_span(tokens, offsets, 13, 20) is None  # no token inside: the caller must encode it


def test_pool_all_is_mean_pooling_over_every_token():
    tokens = np.array([[3, 0], [0, 4], [0, 0]], dtype=np.float32)
    np.testing.assert_allclose(pool_all(tokens), [0.6, 0.8], rtol=1e-6)


def test_with_a_context_free_encoder_late_chunking_gives_each_unit_its_own_vector():
    encoder = WordTokenEncoder()
    assert isinstance(encoder, TokenEncoder) and not isinstance(KeywordEncoder(), TokenEncoder)
    passages = [passage(), passage("Second passage here. It has two sentences in it, both long enough.", 200)]
    units, texts = embedding_units(passages)
    pooled = late_chunk_vectors(passages, units, texts, encoder)
    encoder.encoded.clear()
    np.testing.assert_allclose(pooled, encoder.encode(texts), atol=1e-6)
    assert len(units) > len(passages)  # sentences and pairs were pooled, not only passages


def test_late_chunking_runs_the_model_once_per_passage_and_encodes_only_what_the_window_cut():
    encoder = WordTokenEncoder(window=12)  # "<s>" + 11 words: the title and the first two sentences
    units, texts = embedding_units([passage()])
    pooled = late_chunk_vectors([passage()], units, texts, encoder)
    cut = [t for t in texts[1:] if "Marie" in t or "years" in t]
    assert encoder.encoded == cut  # the units past the window, each encoded on its own
    assert passage_embedding_text(passage()).startswith("Harbour\n")
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, rtol=1e-6)


def test_build_index_pools_with_a_token_encoder_and_falls_back_to_encode_without(seeds_copy, tmp_path):
    words, seen = WordTokenEncoder(), []
    stored = build_index(seeds_copy, tmp_path / "late", encoder=words, settings=IndexSettings(late_chunking="all"),
                         progress=lambda done, total: seen.append((done, total)))
    assert words.encoded == [] and seen[-1] == (len(stored.passages),) * 2  # every unit came from its passage's tokens
    assert stored.manifest["settings"]["late_chunking"] == "all"
    keywords = KeywordEncoder()
    plain = build_index(seeds_copy, tmp_path / "plain", encoder=keywords, settings=IndexSettings(late_chunking="all"))
    assert len(keywords.encoded) == len(plain.units)  # no token vectors: every unit encoded on its own


def test_an_index_built_without_late_chunking_is_out_of_date_for_it(seeds_copy, tmp_path):
    encoder = WordTokenEncoder()
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder, settings=IndexSettings())
    with pytest.raises(IndexOutOfDate, match=r"other settings \(late_chunking\)"):
        check_index(stored, seeds_copy, encoder, IndexSettings(late_chunking="all"))


def test_pairs_only_pools_the_pairs_and_encodes_the_sentences_on_their_own():
    encoder, kinds = WordTokenEncoder(), []
    units, texts = embedding_units([passage()], kinds=kinds)
    assert kinds == ["passage"] + ["sentence"] * 3 + ["pair"] * 3
    pooled = late_chunk_vectors([passage()], units, texts, encoder, kinds=kinds, pooled=frozenset({"pair"}))
    assert encoder.encoded == texts[1:4]  # the three sentences; the passage and the pairs came from tokens
    np.testing.assert_allclose(pooled, encoder.encode(texts), atol=1e-6)


def test_late_chunking_setting_is_checked():
    with pytest.raises(ValueError, match="late_chunking must be one of .*'yes'"):
        IndexSettings(late_chunking="yes")


def test_an_index_written_before_late_chunking_existed_is_still_current(seeds_copy, tmp_path):
    import json

    from embeddings.store import load_index, manifest_checksum

    encoder = WordTokenEncoder()
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    manifest = json.loads((stored.path / "manifest.json").read_text())
    del manifest["settings"]["late_chunking"]  # as an older build wrote it
    manifest["checksum"] = manifest_checksum(manifest)
    (stored.path / "manifest.json").write_text(json.dumps(manifest))
    check_index(load_index(tmp_path / "idx"), seeds_copy, encoder, IndexSettings())  # no IndexOutOfDate
    assert build_index(seeds_copy, tmp_path / "idx", encoder=encoder).path == stored.path  # reused, not rebuilt
