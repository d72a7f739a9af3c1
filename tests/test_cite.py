import pytest

from embeddings.paragraphs import Passage
from qa.citation.claims import is_refusal, parse_markers, split_claims
from qa.citation.verification import CLOSE_IN_MEANING, verify
from qa.citation.words import content_words
from qa.prompting.snippets import Snippet
from qa.retrieve import Hit
from qa.types import REFUSAL

DOC = ("According to Macron's special envoy, Ambassador Pierre Vimont, the engagement was new. "
       "The U.S. left the INF Treaty in 2019. A dozen working groups were set up.")


def snippet(n: int, text: str) -> Snippet:
    start = DOC.index(text)
    passage = Passage(f"a.txt#{n}", "a.txt", 0, len(DOC), DOC, title="T")
    hit = Hit(n, 1.0, passage, 0.5, 1.0, 0, len(DOC))
    return Snippet(n, hit, start, start + len(text), text)


SNIPPETS = [
    snippet(1, "The U.S. left the INF Treaty in 2019."),
    snippet(2, "According to Macron's special envoy, Ambassador Pierre Vimont, the engagement was new."),
    snippet(3, "A dozen working groups were set up."),
]
DOCS = {"a.txt": DOC}


def check_offsets(result):
    for c in result.citations:
        assert DOC[c.start : c.end] == c.text


def test_supported_answer_keeps_its_marker_and_gets_exact_offsets():
    result = verify("Pierre Vimont [2].", SNIPPETS, "Who was the envoy?", DOCS)
    assert not result.refused
    assert result.text == "Pierre Vimont [1]."  # renumbered in order of appearance
    assert [c.passage_id for c in result.citations] == ["a.txt#2"]
    assert "Pierre Vimont" in result.citations[0].text
    check_offsets(result)


def test_an_item_the_model_repeated_is_said_once():
    result = verify("Pierre Vimont, Pierre Vimont [2].", SNIPPETS, "Who was the envoy?", DOCS)
    assert result.text == "Pierre Vimont [1]."
    assert verify("Pierre Vimont, and Ambassador Pierre Vimont [2].", SNIPPETS, "Who was the envoy?",
                  DOCS).text == "Pierre Vimont, and Ambassador Pierre Vimont [1]."  # not the same words twice


def test_wrong_marker_is_moved_to_the_supporting_snippet():
    result = verify("Pierre Vimont [1].", SNIPPETS, "Who was the envoy?", DOCS)
    assert "Vimont" in result.citations[0].text and result.notes


def test_marker_past_the_snippets_is_removed_and_replaced():
    result = verify("The INF Treaty, left in 2019 [7].", SNIPPETS, "Which pact did the U.S. leave?", DOCS)
    assert "removed [7]" in " ".join(result.notes)
    assert result.text.endswith("[1].") and "INF" in result.citations[0].text


def test_missing_citation_is_added():
    result = verify("A dozen working groups.", SNIPPETS, "How many groups were set up?", DOCS)
    assert result.text == "A dozen working groups [1]." and "dozen" in result.citations[0].text


def test_number_words_match_digits():
    result = verify("There were 12 groups [3].", SNIPPETS, "How many working groups were set up?", DOCS)
    assert not result.refused


@pytest.mark.parametrize("raw", [
    "Jens Stoltenberg is the Secretary General [1].",   # invented name
    "The budget is 413 billion euros [2].",             # invented number
    "[2]",                                              # bare marker
    "The envoy [2].",                                   # only repeats the question
    "",
])
def test_unsupported_answers_become_refusals(raw):
    result = verify(raw, SNIPPETS, "Who was the envoy?", DOCS)
    assert result.refused and result.text == REFUSAL and result.citations == ()


def test_model_refusal_is_recognised():
    assert verify(REFUSAL, SNIPPETS, "Q?", DOCS).refused
    assert is_refusal("The passages do not mention the budget.")
    assert not is_refusal("Pierre Vimont was the envoy [2].")


def test_mixed_answer_keeps_only_supported_sentences():
    result = verify("Pierre Vimont [2]. He was born in 1949 in Rouen [2].", SNIPPETS, "Who was the envoy?", DOCS)
    assert result.text == "Pierre Vimont [1]." and "dropped" in " ".join(result.notes)


def test_injected_markers_in_the_answer_cannot_point_outside():
    result = verify("Pierre Vimont [2][99][0].", SNIPPETS, "Who was the envoy?", DOCS)
    assert [c.n for c in result.citations] == [1]
    check_offsets(result)


def test_parse_markers_variants():
    assert parse_markers("a [1, 3] b [Passage 2] c [2][4]") == [(2, 8, (1, 3)), (11, 22, (2,)), (25, 28, (2,)), (28, 31, (4,))]


def test_split_claims_attaches_lone_markers_to_the_sentence_before():
    claims = split_claims("Vimont was envoy. [2] The INF treaty [1].")
    assert [(c.text, c.markers) for c in claims] == [("Vimont was envoy.", (2,)), ("The INF treaty.", (1,))]


def test_content_words_drop_stopwords_and_keep_numbers():
    assert content_words("The U.S. left in 2019") == {"us", "left", "2019"}


def test_a_name_found_in_a_passage_that_says_nothing_of_the_question_is_not_an_answer():
    # the model answers an unanswerable question with a name it saw: the words are in snippet 2,
    # but the cited sentence shares nothing with what was asked
    result = verify("Pierre Vimont [2].", SNIPPETS, "Who won the 2024 presidential election?", DOCS)
    assert result.refused and result.text == REFUSAL and result.citations == ()
    assert "does not mention what was asked" in " ".join(result.notes)
    # the same answer to a question its source does speak of is kept
    kept = verify("Pierre Vimont [2].", SNIPPETS, "Who was Macron's envoy?", DOCS)
    assert not kept.refused and "Vimont" in kept.citations[0].text


def test_a_source_that_shares_no_word_with_the_question_is_on_topic_when_close_to_it_in_meaning():
    question = "Which delegate did the Elysée name for the talks?"  # not one word of snippet 2's sentence
    asked_about = []

    def closeness(cosine):
        def measure(snippet, start, end):
            asked_about.append(DOC[start:end])
            return cosine
        return measure

    assert verify("Pierre Vimont [2].", SNIPPETS, question, DOCS).refused  # no embedding: words only
    assert verify("Pierre Vimont [2].", SNIPPETS, question, DOCS, closeness(CLOSE_IN_MEANING - 0.01)).refused
    kept = verify("Pierre Vimont [2].", SNIPPETS, question, DOCS, closeness(CLOSE_IN_MEANING))
    assert not kept.refused and kept.citations[0].text == SNIPPETS[1].text
    assert asked_about == [SNIPPETS[1].text] * 2  # the cited sentence was measured, nothing else
    assert "close to it in meaning" in " ".join(kept.notes)


def test_the_documents_author_answers_who_wrote_it_though_the_byline_shares_no_word_with_the_question():
    doc = "Rym Momtaz\n\nRym Momtaz is a research fellow based in Paris."
    passage = Passage("m.txt#1", "m.txt", 0, len(doc), doc, title="Macron's European Security Order",
                      author="Rym Momtaz", date="2024-02-02")
    byline = Snippet(1, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), 0, len("Rym Momtaz"), "Rym Momtaz")
    docs = {"m.txt": doc}
    result = verify("Rym Momtaz [1].", [byline], "Who wrote the 2024 article on Macron's European security order?", docs)
    assert not result.refused and result.citations[0].text == "Rym Momtaz"
    # the same name is no answer to a question that does not ask for the author
    other = verify("Rym Momtaz [1].", [byline], "Who heads the European Council?", docs)
    assert other.refused and "does not mention what was asked" in " ".join(other.notes)


@pytest.mark.parametrize(("doc", "meta", "answer", "asked", "cited", "unrelated"), [
    ("Macron's Dialogue With Russia\n\nOur Fellow, Juliette Faure, has published an analysis. In 2019, Macron spoke.",
     {"author": "Juliette Faure"}, "Juliette Faure", "Who is the author of the article on Macron's dialogue?",
     "Our Fellow, Juliette Faure, has published an analysis.", "Who spoke in 2019?"),
    ("Macron's European Security Order\nFebruary 02, 2024\nRym Momtaz\n\nIn 2019, Macron spoke.",
     {"author": "Rym Momtaz", "date": "February 02, 2024"}, "February 02, 2024",
     "On what date was the piece published?", "February 02, 2024", "When did Macron speak?"),
])
def test_an_author_or_date_read_in_the_label_is_cited_where_the_passage_states_it(doc, meta, answer, asked, cited,
                                                                                   unrelated):
    passage = Passage("f.txt#1", "f.txt", 0, len(doc), doc, title=doc.split("\n")[0], **meta)
    shown = doc.index("In 2019")  # the snippet the model saw holds no name or date; its label did
    s = Snippet(1, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), shown, len(doc), doc[shown:])
    result = verify(f"{answer} [1].", [s], asked, {"f.txt": doc})
    assert not result.refused and result.text == f"{answer} [1]."
    assert result.citations[0].text == cited
    assert doc[result.citations[0].start : result.citations[0].end] == result.citations[0].text
    # an author or date from the label answers nothing else
    other = verify(f"{answer} [1].", [s], unrelated, {"f.txt": doc})
    assert other.refused and "dropped unsupported sentence" in " ".join(other.notes)


def test_the_sentence_before_a_cited_one_can_carry_the_question_topic():
    doc = "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina Panthers."
    passage = Passage("b.txt#1", "b.txt", 0, len(doc), doc, title="Super Bowl 50")
    start = doc.index("The Denver")
    s = Snippet(1, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), 0, len(doc), doc)
    result = verify("Denver Broncos [1].", [s], "Which team won Super Bowl 50?", {"b.txt": doc})
    assert not result.refused and result.citations[0].start == start  # cited: the Broncos sentence only


def whole_document_snippet(doc: str) -> Snippet:
    passage = Passage("c.txt#1", "c.txt", 0, len(doc), doc, title="C")
    return Snippet(1, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), 0, len(doc), doc)


@pytest.mark.parametrize(("raw", "question"), [
    # the answer names what the question describes, in another form of the same word
    ("randomized algorithms [1]", "What is the term for algorithms that use random bits?"),
    # the answer is one side of a choice the question offers
    ("the Ethiopian Empire [1]", "Which is older, the British Empire or the Ethiopian Empire?"),
])
def test_an_answer_made_of_the_questions_words_can_still_answer_it(raw, question):
    doc = "Randomized algorithms use random bits. The Ethiopian Empire is older than the British Empire."
    result = verify(raw, [whole_document_snippet(doc)], question, {"c.txt": doc})
    assert not result.refused and result.citations
    assert doc[result.citations[0].start : result.citations[0].end] == result.citations[0].text


def test_an_answer_that_echoes_the_question_word_for_word_is_still_refused():
    doc = "Randomized algorithms use random bits."
    result = verify("random bits [1]", [whole_document_snippet(doc)], "What do random bits do?", {"c.txt": doc})
    assert result.refused and "only repeats the question" in " ".join(result.notes)


def test_between_sentences_holding_the_answer_the_one_that_speaks_of_the_question_is_cited():
    doc = ("The owner writes the list of requirements. Several contractors present ideas. "
           "The owner selects the best ideas and hires the contractor.")
    result = verify("the owner [1]", [whole_document_snippet(doc)], "Who selects the best ideas and hires contractors?",
                    {"c.txt": doc})
    assert not result.refused
    assert result.citations[0].text == "The owner selects the best ideas and hires the contractor."


def snippets_of(doc: str, *texts: str) -> list[Snippet]:
    passage = Passage("d.txt#1", "d.txt", 0, len(doc), doc, title="D")
    hit = Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc))
    return [Snippet(n, hit, doc.index(t), doc.index(t) + len(t), t) for n, t in enumerate(texts, start=1)]


CAPTIONED = "Putin and Macron, 2017. Since Macron was first elected president in 2017, he has sought a new order."


def test_a_marker_on_a_caption_moves_to_the_snippet_that_speaks_of_the_question():
    snippets = snippets_of(CAPTIONED, "Since Macron was first elected president in 2017, he has sought a new order.",
                           "Putin and Macron, 2017.")
    result = verify("2017 [2].", snippets, "When was Macron first elected president?", {"d.txt": CAPTIONED})
    assert result.text == "2017 [1]."
    assert result.citations[0].text.startswith("Since Macron was first elected")
    assert "says less of what was asked" in " ".join(result.notes)


def test_a_marker_stays_where_the_other_snippet_mentions_only_one_more_question_word():
    snippets = snippets_of(CAPTIONED, "Since Macron was first elected president in 2017, he has sought a new order.",
                           "Putin and Macron, 2017.")
    result = verify("2017 [2].", snippets, "In which year did Macron, as president, first meet Putin?",
                    {"d.txt": CAPTIONED})
    assert result.citations[0].text == "Putin and Macron, 2017."  # the model's choice is kept


def test_an_answer_from_a_document_that_never_names_the_questions_year_is_refused():
    # the roadmap was announced in 2019; the question asks about a 2024 event the document never mentions
    doc = "In 2019 the president announced a roadmap for talks with Moscow."
    result = verify("A roadmap [1].", [whole_document_snippet(doc)],
                    "What did the president announce at the 2024 forum?", {"c.txt": doc})
    assert result.refused and "never mentions 2024" in " ".join(result.notes)
    kept = verify("A roadmap [1].", [whole_document_snippet(doc)],
                  "What did the president announce in 2019?", {"c.txt": doc})
    assert not kept.refused and kept.citations[0].text == doc


def test_a_year_alone_does_not_put_a_source_on_the_questions_topic():
    # "the 2024 article" names a document; a sentence that shares only the year (here the one before
    # the cited sentence, which may set its topic) says nothing of the outlet the author worked for
    doc = "The interview aired in 2024. Macron spoke to the BBC in English."
    question = "For which outlet did the 2024 article's author report?"
    result = verify("BBC [1].", [whole_document_snippet(doc)], question, {"c.txt": doc})
    assert result.refused and "does not mention what was asked" in " ".join(result.notes)
    kept = verify("BBC [1].", [whole_document_snippet(doc)], "Which outlet interviewed Macron in 2024?", {"c.txt": doc})
    assert not kept.refused and kept.citations[0].text == "Macron spoke to the BBC in English."


def test_the_year_may_be_in_the_documents_date_rather_than_its_text():
    doc = "The author is based in Paris."
    passage = Passage("e.txt#1", "e.txt", 0, len(doc), doc, title="Security Order", date="2024-02-02")
    s = Snippet(1, Hit(1, 1.0, passage, 0.5, 1.0, 0, len(doc)), 0, len(doc), doc)
    result = verify("Paris [1].", [s], "In which city is the 2024 article's author based?", {"e.txt": doc})
    assert not result.refused and result.citations[0].text == doc


def test_the_citation_helpers_worked_examples_hold():
    import doctest
    import importlib

    results = [doctest.testmod(importlib.import_module(f"qa.citation.{name}")) for name in ("words", "claims", "spans", "verification")]
    assert sum(r.attempted for r in results) >= 10 and sum(r.failed for r in results) == 0


def test_a_bare_magnitude_is_answered_with_the_amount_its_source_gives():
    result = verify("dozen [3].", SNIPPETS, "How many working groups were set up?", DOCS)
    assert result.text == "A dozen working groups [1]." and not result.refused  # and what it counts
    assert verify("dozen [3].", SNIPPETS[:2], "How many groups?", DOCS).refused  # unsupported: still dropped
    check_offsets(result)
