"""Verification of broad answers (qa.citation.broad): explanations, lists, several citations."""

import pytest

from embeddings.paragraphs import Passage
from qa.citation.broad import verify_broad
from qa.prompting.snippets import Snippet
from qa.retrieve import Hit
from qa.types import REFUSAL

DOC = ("Moscow accepted the overtures in 2019 but Putin did not intend to engage in good faith. "
       "Russia paid lip service to the diplomatic process while planning the biggest invasion in decades. "
       "Talks ended without any concrete progress in November 2021. "
       "The granite lighthouse opened in 1811 and its keeper was Marie Duval.")
DOCS = {"a.txt": DOC}


def snippet(n: int, text: str) -> Snippet:
    start = DOC.index(text)
    passage = Passage(f"a.txt#{n}", "a.txt", 0, len(DOC), DOC, title="T")
    return Snippet(n, Hit(n, 1.0, passage, 0.5, 1.0, 0, len(DOC)), start, start + len(text), text)


SNIPPETS = [
    snippet(1, "Moscow accepted the overtures in 2019 but Putin did not intend to engage in good faith."),
    snippet(2, "Russia paid lip service to the diplomatic process while planning the biggest invasion in decades."),
    snippet(3, "Talks ended without any concrete progress in November 2021."),
    snippet(4, "The granite lighthouse opened in 1811 and its keeper was Marie Duval."),
]
QUESTION = "Why did Macron's dialogue with Moscow fail?"


def check_offsets(result):
    for c in result.citations:
        assert DOC[c.start : c.end] == c.text


def test_a_supported_explanation_sentence_sharing_no_word_with_the_question_is_kept():
    raw = "Putin did not intend to engage with Moscow's partner in good faith [1]. Talks ended without any concrete progress [3]."
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS)
    assert not result.refused and "concrete progress" in result.text  # nor does the sentence before it
    assert result.text.count("[") == 2 and [c.n for c in result.citations] == [1, 2]
    check_offsets(result)


def test_the_same_sentence_checked_as_a_one_fact_answer_is_dropped():
    from qa.citation.verification import verify

    result = verify("Talks ended without any concrete progress [3].", SNIPPETS, QUESTION, DOCS)
    assert result.refused  # the one-fact check still wants the question's topic in every cited sentence


def test_an_answer_with_no_sentence_on_topic_is_refused():
    # supported by a passage about something else entirely: the model answering from the wrong passage
    result = verify_broad("The granite lighthouse opened in 1811 [4].", SNIPPETS, QUESTION, DOCS,
                          closeness=lambda *_: 0.1)
    assert result.refused and result.text == REFUSAL and "about what was asked" in result.notes[-1]


@pytest.mark.parametrize("raw", [
    "Macron's envoy resigned in protest after the Kremlin cancelled the summit [1].",  # invented
    "The dialogue failed because of 40 missile tests in 2020 [3].",  # invented numbers
    REFUSAL,
    "",
])
def test_inventions_and_refusals_stay_refused(raw):
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS)
    assert result.refused and result.citations == ()


def test_an_invented_sentence_is_dropped_and_the_supported_ones_kept():
    raw = ("Moscow accepted the overtures [1]. Talks ended without any concrete progress [3]. The envoy then resigned "
           "in protest at the summit [3].")
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS)
    assert not result.refused and "resigned" not in result.text and "concrete progress" in result.text
    assert any("unsupported" in note for note in result.notes)


def test_a_sentence_two_snippets_support_together_cites_both():
    raw = "Putin did not intend to engage in good faith and talks ended without concrete progress [1][3]."
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS)
    assert result.text.endswith("[1][2].") and len(result.citations) == 2
    check_offsets(result)


def test_a_list_answer_keeps_its_items_as_bullet_lines_each_cited():
    raw = "- lip service to the diplomatic process [2]\n- no concrete progress by November 2021 [3]\n- a dragon [9]"
    result = verify_broad(raw, SNIPPETS, "What did the talks with Moscow lead to?", DOCS)
    assert result.text.splitlines() == ["- lip service to the diplomatic process [1]",
                                        "- no concrete progress by November 2021 [2]"]


def test_a_repeated_sentence_is_said_once():
    raw = "Moscow accepted the overtures in 2019 [1]. Moscow accepted the overtures [1]."
    assert verify_broad(raw, SNIPPETS, QUESTION, DOCS).text == "Moscow accepted the overtures in 2019 [1]."


def test_what_the_documents_do_not_say_is_kept_uncited_after_the_answer_but_the_refusal_habit_is_not():
    raw = "Moscow accepted the overtures in 2019 [1]. The documents do not say how Putin replied."
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS)
    assert result.text == "Moscow accepted the overtures in 2019 [1]. The documents do not say how Putin replied."
    habit = verify_broad(f"Moscow accepted the overtures in 2019 [1]. {REFUSAL}", SNIPPETS, QUESTION, DOCS)
    assert habit.text == "Moscow accepted the overtures in 2019 [1]."


def test_a_summary_of_a_named_document_needs_no_word_of_the_question():
    raw = "Russia paid lip service to the diplomatic process [2]."
    assert verify_broad(raw, SNIPPETS, "Summarize the first article.", DOCS, closeness=lambda *_: 0.0).refused
    assert not verify_broad(raw, SNIPPETS, "Summarize the first article.", DOCS, closeness=lambda *_: 0.0,
                            scoped=True).refused


def test_a_year_the_documents_never_name_still_drops_the_sentence():
    result = verify_broad("Talks ended without any concrete progress [3].", SNIPPETS,
                          "Why did the 2024 talks with Moscow fail?", DOCS)
    assert result.refused


def test_a_sentence_cut_off_at_the_token_cap_is_dropped_and_the_finished_ones_kept():
    raw = "- Moscow accepted the overtures in 2019 [1].\n- Talks ended without any concrete progress [3]. Russia paid lip"
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS, prose=True, truncated=True)
    assert result.text == "Moscow accepted the overtures in 2019 [1]. Talks ended without any concrete progress [2]."
    assert "lip" in verify_broad(raw + " service [2].", SNIPPETS, QUESTION, DOCS, prose=True, truncated=True).text


def test_a_description_drops_a_sentence_about_someone_else_in_the_prompt():
    raw = "Putin did not intend to engage in good faith [1]. The granite lighthouse's keeper was Marie Duval [4]."
    described = verify_broad(raw, SNIPPETS, "Who is Putin?", DOCS, each_on_topic=True)
    assert described.text == "Putin did not intend to engage in good faith [1]."
    assert "Duval" in verify_broad(raw, SNIPPETS, "Who is Putin?", DOCS).text  # an explanation would keep it


def test_a_marker_that_adds_no_word_of_the_sentence_is_not_cited():
    echo = snippet(5, "Putin did not intend to engage in good faith.")  # says nothing snippet 1 does not
    raw = "Moscow accepted the overtures in 2019 but Putin did not intend to engage in good faith [1][5]."
    result = verify_broad(raw, [*SNIPPETS, echo], QUESTION, DOCS)
    assert result.text.endswith("faith [1].") and len(result.citations) == 1


def test_a_thin_summary_falls_back_to_the_central_sentences_themselves():
    from qa.citation.broad import extract, thin

    headlines = verify_broad("- Talks [3]\n- Moscow Overtures [1]", SNIPPETS, "Summarize it.", DOCS, scoped=True, prose=True)
    assert thin(headlines)
    full = verify_broad("- Moscow accepted the overtures in 2019 [1]\n- Talks ended without any concrete progress [3]",
                        SNIPPETS, "Summarize it.", DOCS, scoped=True, prose=True)
    assert not thin(full)
    shown = extract(SNIPPETS[:2], DOCS, headlines.notes)
    assert not shown.refused and shown.text.startswith("Moscow accepted the overtures in 2019 but Putin")
    assert shown.text.count("[") == 2 and shown.text.endswith("decades [2].")
    check_offsets(shown)


def test_a_title_copied_as_a_line_of_a_summary_is_dropped():
    titled = [Snippet(s.n, s.hit.__class__(s.hit.rank, 1.0, s.passage.__class__(
        s.passage.id, "a.txt", 0, len(DOC), DOC, title="Moscow Talks Diary", author="Ann Lee"), 0.5, 1.0, 0, len(DOC)),
        s.start, s.end, s.text) for s in SNIPPETS]
    raw = "- Moscow Talks Diary [1]\n- Talks ended without any concrete progress in November 2021 [3]"
    result = verify_broad(raw, titled, "Summarize the diary.", DOCS, scoped=True, prose=True)
    assert result.text == "Talks ended without any concrete progress in November 2021 [1]."
    assert any("dropped a title" in note for note in result.notes)
    kept = verify_broad("- Moscow Talks Diary [1]", titled, "Which articles cover the diary?", DOCS, scoped=True)
    assert "Moscow Talks Diary" in kept.text  # an item of a list of documents may be a source's title
    listed = verify_broad("- Moscow Talks Diary [1]\n- November 2021 [3]", titled, "When did the diary talks end?", DOCS,
                          scoped=True)
    assert listed.text == "- November 2021 [1]"  # elsewhere it is the label the prompt gave its source
    assert any("source's title" in note for note in listed.notes)


def test_a_prose_sentence_that_adds_one_word_to_the_question_is_dropped():
    question = "What specific commitments did Moscow make in the talks?"
    raw = "- Moscow accepted the talks [1]\n- Talks ended without any concrete progress in November 2021 [3]"
    result = verify_broad(raw, SNIPPETS, question, DOCS, prose=True)
    assert result.text.startswith("Talks ended without any concrete progress") and "accepted" not in result.text
    assert any("adds one word" in note for note in result.notes)
    alone = verify_broad("- Moscow accepted the talks [1]", SNIPPETS, question, DOCS, prose=True)
    assert alone.refused  # nothing said beyond the question: the refusal
    assert not verify_broad("- Moscow accepted the talks [1]", SNIPPETS, question, DOCS).refused  # a list item may


def test_the_question_restated_as_a_cause_no_passage_gives_is_dropped_and_the_passage_s_sentence_kept():
    raw = ("- Moscow accepted the overtures in 2019 but Putin did not intend to engage in good faith [1]\n"
           "- Macron's dialogue with Moscow failed because talks ended without any concrete progress in November 2021 [3]")
    result = verify_broad(raw, SNIPPETS, QUESTION, DOCS, prose=True)
    assert result.text.endswith(" Talks ended without any concrete progress in November 2021 [2].")
    assert "because" not in result.text and any("restated as a cause" in note for note in result.notes)
    check_offsets(result)
    lip = "Russia paid lip service to the diplomatic process while planning the biggest invasion in decades."
    stated = [snippet(1, SNIPPETS[0].text), Snippet(2, SNIPPETS[1].hit, DOC.index(lip), DOC.index(lip) + len(lip),
                                                   lip.replace("while", "because it was"))]
    linked = verify_broad("- Macron's dialogue with Moscow failed because Russia paid lip service [2]", stated,
                          QUESTION, {"a.txt": DOC}, prose=True, closeness=lambda *_: 0.9)
    assert "failed because Russia paid lip service" in linked.text  # a passage that gives the cause keeps it


def test_an_extracted_sentence_ending_in_a_closing_quote_keeps_it_before_its_marker():
    from qa.citation.broad import extract

    doc = 'She wrote "The Macron Method." Talks ended'
    passage = Passage("q.txt#1", "q.txt", 0, len(doc), doc, title="T")
    quoted = Snippet(1, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), 0, 30, doc[:30])
    bare = Snippet(2, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), 31, len(doc), doc[31:])
    shown = extract([quoted, bare], {"q.txt": doc}, k=2)
    assert shown.text == 'She wrote "The Macron Method." [1] Talks ended [2].'


def test_a_topical_summary_keeps_its_best_sentences_within_the_words_shown_in_document_order():
    from qa.citation.broad import extract

    doc = ("The harbour opened in 1811 and its first keeper kept it lit through two long wars. "
           "Ferries run every hour. The reef erodes a little more with every winter storm that hits the coast.")
    passage = Passage("h.txt#1", "h.txt", 0, len(doc), doc, title="T")
    hit = Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc))
    sentences = [("The harbour", "wars.", 0.2), ("Ferries", "hour.", 0.9), ("The reef", "coast.", 0.8)]
    spans = [(doc.index(a), doc.index(b) + len(b), score) for a, b, score in sentences]
    first, second, third = (Snippet(n, hit, s, e, doc[s:e], score) for n, (s, e, score) in enumerate(spans, start=1))
    kept = extract([first, second, third], {"h.txt": doc}, k=0, words=22, best_first=True)
    assert kept.text == "Ferries run every hour [1]. The reef erodes a little more with every winter storm that " \
                        "hits the coast [2]."  # the best two, in the document's order; the first sentence had no room
    assert extract([first, second, third], {"h.txt": doc}, k=0, words=22).text.startswith("The harbour opened")


def test_a_heading_the_model_put_before_a_comparison_sentence_is_dropped_unless_it_names_a_source():
    titled = [Snippet(s.n, s.hit.__class__(s.hit.rank, 1.0, s.passage.__class__(
        s.passage.id, "a.txt", 0, len(DOC), DOC, title="Moscow Talks Diary", author="Ann Lee"), 0.5, 1.0, 0, len(DOC)),
        s.start, s.end, s.text) for s in SNIPPETS]
    raw = ("- Russia Policy Verdict: Talks ended without any concrete progress in November 2021 [3]\n"
           "- Lee: Moscow accepted the overtures in 2019 but Putin did not intend to engage in good faith [1]")
    result = verify_broad(raw, titled, "How do the sources differ on the talks?", DOCS, prose=True)
    assert result.text.startswith("Talks ended without any concrete progress in November 2021 [1].")
    assert "Lee: Moscow accepted the overtures" in result.text and "Verdict" not in result.text


def test_a_comparison_turning_to_the_next_source_starts_a_new_paragraph():
    titled = [Snippet(s.n, s.hit.__class__(s.hit.rank, 1.0, s.passage.__class__(
        s.passage.id, "a.txt", 0, len(DOC), DOC, title="Moscow Talks Diary", author="Ann Lee"), 0.5, 1.0, 0, len(DOC)),
        s.start, s.end, s.text) for s in SNIPPETS]
    raw = ("- Talks ended without any concrete progress in November 2021 [3]\n"
           "- Lee: Moscow accepted the overtures in 2019 but Putin did not intend to engage in good faith [1]")
    result = verify_broad(raw, titled, "How do the sources differ on the talks?", DOCS, prose=True)
    assert result.text.split("\n") == ["Talks ended without any concrete progress in November 2021 [1].",
                                       "Lee: Moscow accepted the overtures in 2019 but Putin did not intend to "
                                       "engage in good faith [2]."]


def test_a_comparison_sentence_that_names_the_author_who_did_not_write_its_source_is_dropped():
    def by(author: str, s: Snippet) -> Snippet:
        passage = Passage(f"a.txt#{author}{s.n}", "a.txt", 0, len(DOC), DOC, title="Moscow Talks Diary", author=author)
        return Snippet(s.n, Hit(s.n, 1.0, passage, 0.5, 1.0, 0, len(DOC)), s.start, s.end, s.text)

    two = [by("Ann Lee", SNIPPETS[0]), by("Tom Berg", SNIPPETS[2])]
    raw = ("- Tom Berg writes that Moscow accepted the overtures in 2019 but Putin did not intend to engage in good "
           "faith [1]\n- Tom Berg writes that talks ended without any concrete progress in November 2021 [3]")
    result = verify_broad(raw, two, "How do the sources differ on the talks?", DOCS, prose=True)
    assert "Moscow accepted" not in result.text  # Lee wrote it, not Berg
    assert result.text.startswith("Tom Berg writes that talks ended without any concrete progress")
    assert any("gives Berg a text Berg did not write" in note for note in result.notes)
