import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from conftest import PARA, KeywordEncoder, write_corpus
from embeddings import build, store
from embeddings.build import build_index
from embeddings.errors import CorpusError, IndexCorrupt, IndexNotFound, IndexOutOfDate
from embeddings.store import IndexSettings, check_index, load_index


def test_build_then_load_round_trip(seeds_copy, tmp_path, encoder):
    built = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    loaded = load_index(tmp_path / "idx")
    assert [p.id for p in loaded.passages] == [p.id for p in built.passages]
    assert np.array_equal(loaded.vectors, built.vectors)
    assert loaded.manifest["embedder"] == {"name": "fake-keywords", "dim": 1024, "max_tokens": 256}
    assert set(loaded.manifest["files"]) == {"000_6d54785b39143e23.txt", "002_aa9bdb457b1d5462.txt"}
    for p in loaded.passages:
        assert loaded.documents[p.doc].text[p.start : p.end] == p.text
    assert all(loaded.units[:, 0] < len(loaded.passages))
    check_index(loaded, seeds_copy, encoder)


def test_incremental_update_embeds_only_changed_and_new_files(tmp_path, encoder):
    corpus = write_corpus(tmp_path / "c", {"a.txt": PARA.format("Alpha"), "b.txt": PARA.format("Beta")})
    build_index(corpus, tmp_path / "idx", encoder=encoder)
    (corpus / "b.txt").write_text(PARA.format("Bravo"))
    (corpus / "c.txt").write_text(PARA.format("Charlie"))
    encoder.encoded.clear()
    updated = build_index(corpus, tmp_path / "idx", encoder=encoder)
    assert encoder.encoded and not any("Alpha" in t for t in encoder.encoded)
    assert any("Bravo" in t for t in encoder.encoded) and any("Charlie" in t for t in encoder.encoded)
    assert sorted({p.doc for p in updated.passages}) == ["a.txt", "b.txt", "c.txt"]
    (corpus / "a.txt").unlink()
    encoder.encoded.clear()
    after_delete = build_index(corpus, tmp_path / "idx", encoder=encoder)
    assert encoder.encoded == []
    assert sorted({p.doc for p in after_delete.passages}) == ["b.txt", "c.txt"]
    # vectors still line up with their passages after reuse and reordering
    fresh = build_index(corpus, tmp_path / "fresh", encoder=KeywordEncoder())
    assert np.allclose(after_delete.vectors, fresh.vectors)
    assert np.array_equal(after_delete.units, fresh.units)


def test_unchanged_corpus_is_not_rebuilt(seeds_copy, tmp_path, encoder):
    first = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    encoder.encoded.clear()
    second = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    assert encoder.encoded == [] and second.path == first.path


def test_stale_index_says_what_changed(seeds_copy, tmp_path, encoder):
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    (seeds_copy / "new.md").write_text(PARA.format("New"))
    with open(seeds_copy / "000_6d54785b39143e23.txt", "a") as handle:
        handle.write("\nMore.")
    with pytest.raises(IndexOutOfDate, match="changed: 000_6d54785b39143e23.txt.*new: new.md"):
        check_index(stored, seeds_copy, encoder)


def test_other_embedder_makes_the_index_out_of_date(seeds_copy, tmp_path, encoder):
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    other = KeywordEncoder()
    other.name = "another-model"
    with pytest.raises(IndexOutOfDate, match="another-model"):
        check_index(stored, seeds_copy, other)


def test_other_index_settings_make_the_index_out_of_date(seeds_copy, tmp_path, encoder):
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder, settings=IndexSettings(sentence_units=False))
    check_index(stored, seeds_copy, encoder, IndexSettings(sentence_units=False))
    with pytest.raises(IndexOutOfDate, match=r"other settings \(sentence_units\).*--rebuild"):
        check_index(stored, seeds_copy, encoder, IndexSettings())


def test_missing_index_is_a_typed_error(tmp_path):
    with pytest.raises(IndexNotFound, match="qa index"):
        load_index(tmp_path / "none")


@pytest.mark.parametrize("victim", ["index.faiss", "passages.jsonl", "vectors.npy", "manifest.json", "units.npy"])
def test_truncated_or_edited_files_are_detected(seeds_copy, tmp_path, encoder, victim):
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder)
    path = stored.path / victim
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorrupt, match="rebuild"):
        load_index(tmp_path / "idx")


def test_a_crash_before_the_swap_leaves_the_previous_index_in_use(tmp_path, encoder, monkeypatch):
    corpus = write_corpus(tmp_path / "c", {"a.txt": PARA.format("Alpha")})
    before = build_index(corpus, tmp_path / "idx", encoder=encoder)
    (corpus / "b.txt").write_text(PARA.format("Beta"))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(build, "_swap_current", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, tmp_path / "idx", encoder=encoder)
    after = load_index(tmp_path / "idx")
    assert after.path == before.path and [p.doc for p in after.passages] == ["a.txt"]


def test_empty_corpus_is_a_clear_error(tmp_path, encoder):
    corpus = write_corpus(tmp_path / "c", {"empty.txt": ""})
    with pytest.raises(CorpusError, match="empty.txt: empty file"):
        build_index(corpus, tmp_path / "idx", encoder=encoder)
    with pytest.raises(IndexNotFound):
        load_index(tmp_path / "idx")


def test_approximate_index_above_the_threshold(seeds_copy, tmp_path, encoder):
    settings = IndexSettings(vectors=store.VectorSettings(approx_threshold=10))
    stored = build_index(seeds_copy, tmp_path / "idx", encoder=encoder, settings=settings)
    assert stored.index.kind == "hnsw"
    scores, rows = stored.index.search(stored.vectors[:1], 1)
    assert rows[0, 0] == 0 and scores[0, 0] == pytest.approx(1.0, abs=1e-4)


def _build_in_process(corpus: str, index_dir: str) -> int:
    stored = build_index(corpus, index_dir, encoder=KeywordEncoder())
    return len(stored.passages)


def test_concurrent_builds_cannot_corrupt_the_index(seeds_copy, tmp_path):
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        counts = pool.starmap(_build_in_process, [(str(seeds_copy), str(tmp_path / "idx"))] * 3)
    assert len(set(counts)) == 1
    loaded = load_index(tmp_path / "idx")
    assert len(loaded.passages) == counts[0]
    versions = [p for p in Path(tmp_path / "idx").iterdir() if p.name.startswith("v-")]
    assert len(versions) == 1 and json.loads((versions[0] / "manifest.json").read_text())
