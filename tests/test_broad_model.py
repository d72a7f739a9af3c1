"""Broad answers with the real packaged models on the seed corpus (marked ``model``)."""

import re

import pytest

from embeddings.paragraphs import split_sentences
from qa.citation.claims import strip_citations
from qa.pipeline import Pipeline
from qa.settings import Settings


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    p = Pipeline(Settings(index_dir=tmp_path_factory.mktemp("idx")))
    p.warm_up()
    return p


def check_citations(pipeline, answer):
    assert answer.citations
    for c in answer.citations:
        assert pipeline.document_text(c.doc)[c.start : c.end] == c.text
    shown = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert shown == {c.n for c in answer.citations}  # every marker names a citation, every citation is used


@pytest.mark.model
def test_who_is_a_person_is_answered_from_her_biography(pipeline):
    answer = pipeline.answer("Who is Rym Momtaz?")
    assert not answer.refused
    check_citations(pipeline, answer)
    assert re.search(r"Research Fellow|IISS|International Institute for Strategic Studies|Politico", answer.text)
    assert any("Rym Momtaz is a Paris-based" in c.text for c in answer.citations)


@pytest.mark.model
def test_summary_of_the_first_article_cites_only_it_in_sentences(pipeline):
    answer = pipeline.answer("Summarize the first article.")
    assert not answer.refused
    check_citations(pipeline, answer)
    first = sorted(pipeline.index.documents)[0]
    assert {c.doc for c in answer.citations} == {first}
    assert re.search(r"strategic dialogue|architecture of trust|Vimont|Trump|Biden|Minsk", answer.text)
    text = strip_citations(answer.text)
    assert all(len(text[s:e].split()) >= 6 for s, e in split_sentences(text))  # sentences, not headlines
    assert 15 <= len(strip_citations(answer.text).split()) <= 160


@pytest.mark.model
def test_a_summary_of_an_article_the_corpus_lacks_is_refused(pipeline):
    answer = pipeline.answer("Summarize Momtaz's Politico article \"Emmanuel Macron's Russian Roulette\".")
    assert answer.refused and answer.citations == ()


@pytest.mark.model
def test_why_a_dialogue_failed_is_answered_from_the_passage_saying_so_not_from_the_title_s_article_opening(pipeline):
    # the question repeats the first article's title, whose words BM25 would credit to every one of its passages
    answer = pipeline.answer("Why did Macron's dialogue with Russia fail?")
    assert not answer.refused
    check_citations(pipeline, answer)
    assert re.search(r"good faith|lip service|without any concrete progress", answer.text)


@pytest.mark.model
def test_a_list_of_speeches_and_interviews_names_each_one_the_article_quotes_without_the_model(pipeline):
    answer = pipeline.answer("Which speeches and interviews does Momtaz quote? List them.")
    assert not answer.refused and answer.raw_text == ""  # the named things themselves, no model call
    check_citations(pipeline, answer)
    items = [line for line in answer.text.splitlines() if line.startswith("- ")]
    assert len(items) >= 4 and len(items) == len(answer.text.splitlines())
    for needle in ("GLOBSEC", "Munich", "ambassadors", "BBC"):
        assert any(needle in item for item in items), needle
    momtaz = [d for d in pipeline.index.documents if pipeline.index.documents[d].meta.author == "Rym Momtaz"]
    assert {c.doc for c in answer.citations} == set(momtaz)


@pytest.mark.model
def test_a_description_of_an_acronym_is_answered_from_the_passage_naming_it(pipeline):
    answer = pipeline.answer("What is GLOBSEC?")
    assert not answer.refused
    check_citations(pipeline, answer)
    assert all("GLOBSEC" in c.text for c in answer.citations)


@pytest.mark.model
def test_the_role_of_a_name_in_both_articles_is_answered_from_each_without_the_model(pipeline):
    answer = pipeline.answer("I'd like to know what role Donald Trump plays in these two texts.")
    assert not answer.refused and answer.raw_text == ""
    check_citations(pipeline, answer)
    assert {c.doc for c in answer.citations} == set(pipeline.index.documents)  # one article each
    assert all("Trump" in c.text for c in answer.citations)
    assert answer.text.startswith("Faure: ") and "\nMomtaz: " in answer.text


@pytest.mark.model
def test_a_section_summary_opens_with_the_section_s_own_opening(pipeline):
    answer = pipeline.answer("Can you summarize the \"Russia's Place\" section of the second article?")
    assert not answer.refused
    check_citations(pipeline, answer)
    assert answer.citations[0].text.startswith("On Russia, Macron’s view has been")
    inside = [(p.doc, p.start, p.end) for p in pipeline.retriever.passages if p.section == "Russia’s Place"]
    assert inside and all(any(d == c.doc and s <= c.start and c.end <= e for d, s, e in inside)
                          for c in answer.citations)
