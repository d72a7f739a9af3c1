"""Question shapes (qa.shapes) and document references (qa.references)."""

from types import SimpleNamespace as NS

import pytest

from qa.references import Scope, documents_named, naming_names, resolve, unknown_names
from qa.shapes import SHAPES, Shape, asked_sentences, classify, described


@pytest.mark.parametrize(("question", "shape"), [
    # one fact: the path of today, unchanged
    ("Who was Macron's special envoy for the strategic dialogue with Russia?", "fact"),
    ("Who is the current Secretary General of NATO?", "fact"),
    ("Who is the fellow credited with the analysis of France's bid?", "fact"),
    ("How many French troops are stationed in Romania?", "fact"),
    ("How long after the invasion began did the French leader's first term come to an end?", "fact"),
    ("What does the author say EU member states have come a long way in waking up from?", "fact"),
    ("Which accords did Paris hope to push forward to stop the fighting in eastern Ukraine?", "fact"),
    ("What is the EU's goal for 155mm artillery rounds?", "fact"),
    ("According to Macron's new-year remarks to the military, what would a win by Moscow mean for Europe?", "fact"),
    ("", "fact"),
    # explanations
    ("Why did Macron's dialogue with Russia fail?", "explain"),
    ("According to the author, why is French leadership seen as lacking credibility?", "explain"),
    ("How do weapons production problems affect the goal of a new relationship?", "explain"),
    ("What came of the working groups that Paris and Moscow set up?", "explain"),
    ("What role does Zelensky play in the account?", "describe"),
    ("Who wrote the analysis, and where did it appear?", "explain"),
    ("What does Macron mean when he says the order must be adapted to new realities?", "explain"),
    ("According to the mayor, what do the floods and the drought prove about the town's needs?", "explain"),
    ("What was the envoy trying to achieve with the talks?", "explain"),
    ("The mayor keeps talking about a 'harbour for all'. What is she actually getting at?", "explain"),
    ("Momtaz calls it 'less a doctrine than a framework' - what does she mean by that?", "explain"),
    ("In the 2024 piece, has the pier lived up to the mayor's promises?", "explain"),  # yes or no: the passage
    ("Did the talks with the harbour board succeed?", "explain"),
    ("joe biden - what role does he play in the documents?", "describe"),  # a topic named first
    ("What does the author say the leaders failed to build in 1990?", "fact"),  # "say" asks a fact as often
    # descriptions of a named person, organisation or thing
    ("Who is Rym Momtaz?", "describe"),
    ("who was Pierre Vimont", "describe"),
    ("who is pierre vimont", "describe"),  # a name typed in lower case, nothing after it
    ("who is the envoy?", "fact"), ("who was macron's envoy?", "fact"), ("who is in charge?", "fact"),
    ("What is GLOBSEC, and what did Macron say when he spoke there?", "describe"),
    ("Who is Ann Lee and what did she do for the harbour?", "describe"),  # the description, then what it goes on to
    ("What is the Larsholm Guild and why does the mayor keep mentioning it?", "describe"),
    ("Who was Macron's envoy and what did he do?", "fact"),  # no name: a fact asked, then another
    # a thing the documents name: answered only from a passage naming all of it (qa.extractive.best_snippet)
    ("What is Juliette Faure's doctoral thesis about?", "describe"),
    ("What was the Munich Security Conference speech about?", "describe"),
    ("What are the Minsk agreements that Faure mentions?", "describe"),
    ("What is the harbour treaty which the mayor's report cites?", "describe"),
    ("ann lee - who is she, and what does she do?", "describe"),  # the topic named first
    # lists
    ("What are the two shortcomings of Macron's vision?", "list"),
    ("Which subjects were the strategic talks with Russia supposed to cover?", "list"),
    ("In the first article, what developments are cited as showing the architecture broke down?", "list"),
    ("Name articles the analyst wrote for her former outlet.", "list"),
    ("which treaties or agreements come up in Faure's piece?", "list"),  # things, plural, mentioned
    ("What reports does the mayor cite?", "list"),
    ("Which speeches, trips and interviews does the mayor quote from?", "list"),
    ("What did the mayor promise the town? Give me a list.", "list"),
    ("What weapons were sent?", "fact"),
    # summaries
    ("Summarize the first article in three sentences.", "summary"),
    ("Give me a short summary of the article on Macron's dialogue with Russia.", "summary"),
    ("What is the main argument of Momtaz's piece?", "summary"),
    ("Briefly, what does the piece on the security architecture say?", "summary"),
    ("In a few sentences, what does the February 2024 article say about weapons production?", "summary"),
    ("Can you recap what the mayor said on her visit to the harbour?", "summary"),
    ("Give me a quick rundown of the harbour report.", "summary"),
    ("What's the synopsis of the town notes?", "summary"),
    # comparisons
    ("How do the two articles differ in their assessment of Macron's Russia policy?", "compare"),
    ("How did Macron's public stance on Russia change from 2022 to 2023?", "compare"),
    ("Compare Faure's and Momtaz's views.", "compare"),
    ("How is his approach in 2019 different from what he said in 2024?", "compare"),
    ("Comparing the harbour report with the town notes, how does each deal with the mayor?", "compare"),
    # a request around the question, and short forms
    ("Can you list the subjects the mayor wanted to discuss with the guild?", "list"),
    ("Could you please name the piers the storm destroyed?", "list"),
    ("who's ann lee?", "describe"),
    ("Can you tell me who Ann Lee is?", "describe"),
    ("I'd like to know what role Ann Lee plays in these two texts.", "describe"),
    ("What role did the Larsholm Guild play in the vote?", "describe"),
    ("Please tell me why the pier fell.", "explain"),
    ("What building blocks did the mayor lay out for the new harbour?", "list"),
    ("What conditions did the guild propose for the loan?", "list"),
    ("What did the mayor propose?", "fact"),  # no things, plural
    ("How is Ann Lee portrayed in the town notes?", "describe"),
    ("How is the harbour portrayed?", "explain"),  # no name
    ("In the town notes, what's still unresolved about the pier?", "explain"),
    ("What remains unclear in the mayor's plan?", "explain"),
    ("What is the harbour's main export?", "fact"),
])
def test_the_shape_follows_the_wording(question, shape):
    assert classify(question).name == shape


def test_one_fact_answers_keep_their_settings_and_broad_ones_read_more():
    fact = SHAPES["fact"]
    assert not fact.broad and fact.instruction == "" and fact.context_tokens == 0  # the answer settings' budget
    for shape in SHAPES.values():
        if shape.broad:
            assert shape.context_tokens > 60 and shape.max_tokens >= 90 and "[" in shape.instruction
    with pytest.raises(ValueError, match="bad budget"):
        Shape("odd", -1, 10, "")


def doc(path, title, author=None, date=None):
    return NS(path=path, text="", meta=NS(title=title, author=author, date=date))


DOCS = {d.path: d for d in (
    doc("000_faure.txt", "Macron’s Dialogue With Russia: A French Attempt to Fix the European Security Architecture",
        "Juliette Faure"),
    doc("002_momtaz.txt", "Macron’s European Security Order: Stronger European Defense, Less Reliance on US",
        "Rym Momtaz", "February 02, 2024"),
)}
SECTIONS = [("002_momtaz.txt", "Russia’s Place"), ("002_momtaz.txt", "The Transatlantic Relationship")]
FAURE, MOMTAZ = ("000_faure.txt",), ("002_momtaz.txt",)


@pytest.mark.parametrize(("question", "docs"), [
    ("Summarize the first article.", FAURE),
    ("Summarize the second piece.", MOMTAZ),
    ("Summarize the last document.", MOMTAZ),
    ("What is the main argument of Momtaz's piece?", MOMTAZ),
    ("Summarize Juliette Faure's analysis.", FAURE),
    ("Summarize the February 2024 article.", MOMTAZ),
    ("What does the 2024 piece say?", MOMTAZ),
    ("Summarize 000_faure.txt please", FAURE),
    ("Summarize the file 002_momtaz", MOMTAZ),
    ("Give me a summary of the article on Macron's dialogue with Russia.", FAURE),
    ("What does the piece on France's attempt to fix the European security architecture say?", FAURE),
    ("How do the two articles differ?", FAURE + MOMTAZ),
    ("How does Faure's take differ from Momtaz's verdict?", FAURE + MOMTAZ),
    ("Summarize Germany's position on Ukraine joining NATO.", ()),  # a topic, no document
    ("Summarize the 2019 article.", ()),  # no document of that date
])
def test_a_reference_names_the_documents(question, docs):
    assert resolve(question, DOCS, SECTIONS).docs == docs


@pytest.mark.parametrize(("question", "docs"), [
    ("In Faure's piece, how does Zelensky's election fit Macron's plans?", FAURE),
    ("Momtaz says his vision is 'less a doctrine than a framework' - what does she mean?", MOMTAZ),
    ("How is Putin portrayed in the 2024 piece?", MOMTAZ),
    ("In the second article, why do the Baltic states object?", MOMTAZ),
    ("Why did Macron's dialogue with Russia fail?", ()),  # a title's words name no document here
    ("What does 'a French attempt to fix the European security architecture' mean?", ()),  # nor a quotation
    ("Where do Faure and Momtaz agree?", ()),  # every document: no narrowing
    ("Why was the last piece of the puzzle missing?", ()),  # an ordinal before "piece of" names no document
])
def test_an_explanation_names_its_documents_only_by_file_ordinal_author_date_or_outlet(question, docs):
    assert documents_named(question, DOCS) == docs


def test_a_section_is_named_by_its_heading_quoted_or_not():
    assert resolve('Give me a summary of the "Russia\'s Place" section.', DOCS, SECTIONS) == Scope(MOMTAZ, "Russia’s Place")
    assert resolve("Summarize the transatlantic relationship section", DOCS, SECTIONS).section == \
        "The Transatlantic Relationship"


def test_a_quoted_title_no_document_holds_is_missing():
    scope = resolve('Summarize Momtaz\'s Politico article "Emmanuel Macron\'s Russian Roulette".', DOCS, SECTIONS)
    assert scope.docs == () and scope.missing == "Emmanuel Macron's Russian Roulette"


def test_a_description_says_what_it_describes_when_its_wording_does():
    assert described("Who is Rym Momtaz?") == "Rym Momtaz"
    assert described("What are the Minsk agreements that Faure mentions?") == "Minsk agreements"
    assert described("According to the report, what was the harbour festival about?") == "harbour festival"
    assert described("Tell me about the harbour.") == "" and described("Why did the pier fall?") == ""
    assert described("ann lee - who is she, and what does she do?") == "ann lee"
    assert described("Who is Ann Lee and what did she do for the harbour?") == "Ann Lee"
    assert described("who is she?") == "" and classify("who is she?").name == "fact"  # a follow-up: rewritten first
    assert described("who's ann lee?") == "ann lee" and described("Can you tell me who Ann Lee is?") == "Ann Lee"
    assert described("I'd like to know what role Ann Lee plays in these two texts.") == "Ann Lee"
    assert described("What role does the Larsholm Guild play?") == "Larsholm Guild"


def test_the_part_of_a_document_that_explains_something_is_a_topic():
    scope = resolve("Sum up the part of the first article that explains why the talks stalled.", DOCS, SECTIONS)
    assert scope.docs == FAURE and scope.topic == "why the talks stalled" and not scope.part
    scope = resolve("Summarize the section of Momtaz's piece where she discusses arms production?", DOCS, SECTIONS)
    assert scope.docs == MOMTAZ and scope.topic == "arms production"
    assert not resolve("Summarize the part of the second article.", DOCS, SECTIONS).topic


def test_a_summary_about_a_topic_is_marked_topical():
    assert resolve("Summarize what the February 2024 article says about the U.S.", DOCS, SECTIONS).topic
    assert not resolve("Summarize the first article.", DOCS, SECTIONS).topic
    scope = resolve("Summarize what the first article says about the transatlantic relationship?", DOCS, SECTIONS)
    assert scope.topic == "the transatlantic relationship"  # what the summary searches its document for
    scope = resolve("What does the first article say about NATO? Quick overview please.", DOCS, SECTIONS)
    assert scope.topic == "NATO"  # the topic ends at the question mark: what follows is another sentence


@pytest.mark.parametrize(("question", "docs", "section", "part"), [
    ("Summarize the opening part of the 2024 article, before the section on Russia's Place.", MOMTAZ,
     "Russia’s Place", "before"),
    ("Summarize the second article after the section on the transatlantic relationship.", MOMTAZ,
     "The Transatlantic Relationship", "after"),
    ("Summarize the conclusion of the first article.", FAURE, None, "ending"),
    ("Give me the gist of the end of Faure's piece.", FAURE, None, "ending"),
    ("Summarize the introduction of Momtaz's piece.", MOMTAZ, None, "opening"),
    ("Summarize the transatlantic relationship section", MOMTAZ, "The Transatlantic Relationship", ""),
    ("Summarize what Momtaz says about the end of the Cold War.", MOMTAZ, None, ""),  # a topic, not a part
    ("Summarize the first article.", FAURE, None, ""),
])
def test_a_part_of_a_document_is_resolved_from_the_wording(question, docs, section, part):
    scope = resolve(question, DOCS, SECTIONS)
    assert (scope.docs, scope.section, scope.part) == (docs, section, part)


def test_a_document_is_named_by_a_name_only_its_text_holds():
    docs = {"a.txt": NS(path="a.txt", text="Ann Lee wrote this for the Harbour Gazette in spring.",
                        meta=NS(title="Harbour Days", author="Ann Lee", date=None)),
            "b.txt": NS(path="b.txt", text="Notes on the harbour and the town.",
                        meta=NS(title="Town Notes", author="Tom Berg", date=None))}
    assert resolve("Compare the Harbour Gazette piece with Berg's notes on the quay.", docs).docs == ("a.txt", "b.txt")
    assert resolve("Summarize The Harbour Gazette article.", docs).docs == ("a.txt",)
    assert resolve("Summarize the Harbour article.", docs).docs == ()  # both texts hold "harbour"


def test_a_name_is_looked_for_only_in_the_documents_that_may_hold_it():
    read = []

    class Doc:
        def __init__(self, path, text):
            self.path, self._text, self.meta = path, text, NS(title=path, author=None, date=None)

        @property
        def text(self):
            read.append(self.path)
            return self._text

    docs = {p: Doc(p, t) for p, t in (("a.txt", "For the Harbour Gazette."), ("b.txt", "Town notes."),
                                      ("c.txt", "The Harbour Gazette again."))}
    question = "Summarize the Harbour Gazette article."
    assert naming_names(question, docs) == {} and read == ["a.txt", "b.txt", "c.txt"]  # two hold it: none named
    read.clear()
    assert naming_names(question, docs, holding=lambda name: {"a.txt", "b.txt"}) == {"Harbour Gazette": "a.txt"}
    assert read == ["a.txt", "b.txt"]


def test_names_no_document_holds_are_reported():
    vocabulary = {"macron", "russia", "approach", "compar", "german"}
    assert unknown_names("How does Macron's approach to Russia compare with Olaf Scholz's?", vocabulary) == \
        ["Olaf", "Scholz's"]
    assert unknown_names("How does Macron's approach to Russia compare?", vocabulary) == []
    assert unknown_names("Why did the German approach fail?", vocabulary) == []
    # a year no document holds, but not the year of a document reference
    assert unknown_names("Summarize Macron's 2024-2030 approach to Russia.", vocabulary | {"2024"}) == ["2030"]
    assert unknown_names("Why, according to the 2030 article, did the approach fail?", vocabulary) == []


@pytest.mark.parametrize("question,count", [
    ("Summarize the first article in three sentences.", 3), ("Give me the gist in 2 sentences", 2),
    ("Summarize it in one short sentence.", 1), ("Summarize the first article.", None),
    ("Which three sentences of the article matter most?", None),
])
def test_the_number_of_sentences_a_user_asks_for(question, count):
    assert asked_sentences(question) == count
