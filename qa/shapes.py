"""Question shapes: what kind of answer a question wants, decided from its wording alone.

The one decision: a shape is chosen by word rules, never by a model call, so a one-fact question
costs nothing more than before and keeps its prompt, budget and verification unchanged. The broad
shapes (explanation, description, list, summary, comparison) each get their own passage budget,
answer length and instruction, given in the question's own turn after the same fixed prefix the
one-fact answers use, so the model's prefix cache serves every shape (docs/DESIGN.md, step 6).

    >>> classify("Who was Macron's special envoy?").name, classify("Who is Rym Momtaz?").name
    ('fact', 'describe')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.types import REFUSAL


@dataclass(frozen=True)
class Shape:
    name: str  # "fact", "explain", "describe", "list", "summary" or "compare"
    context_tokens: int  # tokens of passage text in the prompt (0: the answer settings' own budget)
    max_tokens: int  # generation cap
    instruction: str  # said after the question, in its own turn ("" for one-fact answers)
    passages: int = 5  # retrieved passages shown to the snippet selection
    anchors: int = 4  # best sentences the snippets are grown from
    per_passage: int = 2  # of which at most this many from one passage
    prose: bool = False  # the answer's lines are sentences of one paragraph, not list items
    follow: bool = False  # each anchor sentence brings the one after it first (qa.prompting.snippets)
    bm25_weight: float | None = None  # BM25's weight in the passage fusion (None: the retriever's own)
    bm25_titles: bool = True  # whether BM25 matches the documents' titles (qa.retrieve.Retriever.bm25_scores)

    def __post_init__(self) -> None:
        if self.context_tokens < 0 or self.max_tokens < 1:
            raise ValueError(f"bad budget for shape {self.name!r}: {self.context_tokens}, {self.max_tokens}")

    @property
    def broad(self) -> bool:
        return self.name != "fact"


# BM25's weight in the passage fusion for explanations, descriptions, summaries and comparisons: their
# questions share more words with their evidence than one-fact questions do. Evidence MRR over the
# eight question sets, by shape, weight 0.5 -> 1.0: explain 0.80 -> 0.83 (26 questions), describe
# 0.66 -> 0.75 (8), summary 0.68 -> 0.73 (10), compare 0.64 -> 0.68 (9); but one-fact 0.787 -> 0.779
# (67) and lists asked as one-fact questions 0.65 -> 0.57 (11), so those keep the retriever's 0.5
# (bench/bench_retrieval.py --by-shape, bench/results/retrieval_shapes.json).
BROAD_BM25 = 1.0
_CITE = "End every sentence with the number of the passage it copies, like [2]."
_PARTIAL = f"If the passages do not answer the question, reply exactly: {REFUSAL}"
# the 1.5B model keeps to lines (and copies a template such as "- sentence [1]" word for word)
_LINES = "each on its own line starting with \"- \" and ending with the number of its passage, like [2].\n"
SHAPES = {shape.name: shape for shape in (
    Shape("fact", 0, 96, ""),
    Shape("explain", 190, 110, f"Answer with two or three sentences copied from the passages, {_LINES}{_PARTIAL}",
          passages=8, anchors=5, per_passage=2, prose=True, follow=True, bm25_weight=BROAD_BM25, bm25_titles=False),
    Shape("describe", 130, 90, f"Say in two or three sentences copied from the passages who or what it is and "
          f"what it does. {_CITE} {_PARTIAL}", passages=8, anchors=4, per_passage=3,
          bm25_weight=BROAD_BM25, bm25_titles=False),
    Shape("list", 190, 120, f"List every item the passages give, one per line, in this form:\n- item [1]\n- item [3]"
          f"\n{_PARTIAL}", passages=8, anchors=5, per_passage=2, follow=True),
    Shape("summary", 170, 170, f"Summarize them in three or four sentences copied from the passages, {_LINES.rstrip()}",
          passages=8, anchors=6, per_passage=2, prose=True, bm25_weight=BROAD_BM25, bm25_titles=False),
    Shape("compare", 230, 170, f"Compare them in two to four sentences copied from the passages: first what one "
          f"source says, then what the other says, {_LINES}{_PARTIAL}", passages=8, anchors=6, per_passage=2,
          prose=True, follow=True, bm25_weight=BROAD_BM25, bm25_titles=False),
)}

_SUMMARY = re.compile(
    r"\b(?:summari[sz]e|summari[sz]ing|summary|overview|gist|tl;?dr|main (?:argument|point|idea|thesis|message)s?"
    r"|key (?:points|takeaways)|recap|sum up|run-?down|synopsis|in a nutshell)\b"
    r"|^(?:briefly,? )?what (?:does|did) (?:the|this|that|her|his|their|[\w'’]+['’]s) (?:[\w'’-]+ ){0,3}"
    r"(?:article|piece|document|analysis|text|paper|report|essay|file|section)\b.{0,120}\bsay(?: about .{1,80})?\W*$",
    re.I)
_COMPARE = re.compile(
    r"\b(?:differ|differs|differed|difference|differences|different|differently|compare|compared|comparison"
    r"|comparing|compares|contrast|versus|vs\.?)\b"
    r"|^how (?:did|has|have|does|do) .{1,120}\b(?:change|changed|evolve|evolved|shift|shifted)\b",
    re.I)
# "Who is Rym Momtaz?", "What is GLOBSEC, and...": a named thing, not "who is the current...".
_NAME = r"(?:[A-Z][\w'’.&-]*)(?:\s+(?:[A-Z][\w'’.&-]*|of|de|von|van|for|the)){0,5}"
# "who is pierre vimont": a name typed in lower case is the whole question, with no article, possessive
# or preposition in it ("who is the envoy?", "who was macron's envoy?", "who is in charge?" ask a fact).
_FUNCTION = r"(?:the|a|an|this|that|these|those|he|she|it|they|him|them|you|we|i|me|his|her|their|its|our|your|my|in|on|at|of|for|to|by|with|from|behind|responsible)"
_TYPED_NAME = rf"(?!{_FUNCTION}\b)[a-z][a-z.-]+(?:\s+(?!{_FUNCTION}\b)[a-z][a-z.-]+){{0,3}}"
# "Who is Pierre Vimont and what was his role...?", "What is GLOBSEC and why does it keep coming up?": the
# description comes first, the rest asks what the description of it goes on to say.
_AND_ASKS = r"\s+and\s+(?:what|why|how|where|when|which|who)\b"
_DESCRIBE = re.compile(rf"^(?i:who|what)\s+(?i:is|was|are|were)\s+(?:the\s+)?(?P<name>{_NAME})\s*(?:\?|,|$|(?i:{_AND_ASKS}))"
                       rf"|^(?i:who)\s+(?i:is|was)\s+(?P<typed>{_TYPED_NAME})\s*\??$"
                       rf"|^(?i:who|what)\s+(?P<inner>{_NAME})\s+(?i:is|was)\s*[?.]?$"  # "tell me who Pierre Vimont is"
                       # "What role does Volodymyr Zelensky play in Faure's account?": the part a name plays
                       rf"|^(?i:what)\s+(?i:role|part)\s+(?i:(?:does|did|do)\s+(?:the\s+)?(?P<player>{_NAME})\s+play"
                       rf"|(?:the\s+)?(?P<plays>{_NAME})\s+(?i:plays|played))\b"
                       # "How is Vladimir Putin portrayed in the 2024 piece?": what the documents say of a name
                       rf"|^(?i:how)\s+(?i:is|was|are|were)\s+(?:the\s+)?(?P<portrayed>{_NAME})\s+"
                       r"(?i:portrayed|described|depicted|presented|characteri[sz]ed|pictured)\b"
                       r"|^(?i:tell me about|describe)\s")
# "What are the Minsk agreements that Faure mentions?", "What was the Munich speech about?": a thing the
# documents name, to be described from a passage that names all of it (`described`, `qa.extractive.best_snippet`).
_THING = re.compile(r"^what\s+(?:is|was|are|were)\s+(?:the\s+)?(?P<thing>[^,?]{3,60}?)\s+(?:(?:that|which)\s+[^,?]{1,60}?"
                    r"\b(?:mentions?|mentioned|cites?|cited|refers? to|discuss(?:es|ed)?|describes?|brings? up)|about)\s*\??$",
                    re.I)
_QUANTITY = r"(?:many|much|long|far|old|often|large|big|high|soon|early|late)"
_EXPLAIN = re.compile(
    rf"^how come\b|\bwhy\b|^how (?!{_QUANTITY}\b)(?:do|does|did|is|are|was|were|has|have|had|can|could|would|will"
    r"|should|might)\b|\bwhat (?:came|has come|comes) of\b|\bwhat happened\b|^what (?:role|effect|impact|influence"
    r"|consequences?|difference)\b|^in what ways?\b|\bexplain\b|, and (?:what|why|how|where|who|when)\b"
    # what a statement means or proves, or what someone was after: a claim to explain, not a fact ("what
    # does X say" stays a fact: one-fact questions ask it as often as broad ones)
    r"|^what (?:do|does|did) .{1,120}\b(?:mean|means|prove|proves|argue|argues)\b"
    r"|\bwhat (?:do|does|did) (?:she|he|they|it|the author|\w+) (?:mean|means)\b"  # "Momtaz says '...' - what does she mean?"
    r"|\bwhat (?:is|was|are|were) (?:she|he|they|it|the author|\w+) (?:actually |really )?(?:getting|driving|hinting) at\b"
    r"|^what (?:is|was|are|were) .{1,80}\b(?:trying|seeking|hoping|aiming) to\b"
    # what a plan leaves open: "what's still unresolved about Ukraine in Macron's new order?"
    r"|^what (?:is|are|was|were|remains?|remained) (?:still |yet |left )?(?:unresolved|unclear|unanswered|missing"
    r"|lacking|open|undecided|at stake|the (?:catch|downside|problem|weakness|flaw))\b"
    # a yes/no question ("Has France's effort lived up to his words?"): the passage that settles it
    r"|^(?:has|have|does|do|did|is|are|was|were|will|would|should)\s+\w",
    re.I)
_COUNT = r"(?:two|three|four|five|six|seven|eight|nine|ten|several|\d)"
_KINDS = (r"(?:subjects|topics|conditions|events|regions|elements|issues|steps|measures|factors|reasons|ways"
          r"|areas|countries|shortcomings|goals|points|ideas|pillars|gaps|conflicts|developments|themes"
          r"|priorities|arguments|features|foundations|demands|proposals|criticisms|components|items|signs"
          r"|problems|challenges|lessons|principles|options|areas|fields|examples)")
_MENTION = (r"(?:come up|came up|appear|appears|appeared|mention|mentions|cite|cites|name|names|list|lists|refer to|quote|quotes"
            # what someone puts forward: "What building blocks did Macron lay out in Bratislava?"
            r"|lay out|laid out|lays out|set out|sets out|outline|outlines|outlined|propose|proposes|proposed"
            r"|put forward|puts forward|identify|identifies|identified|suggest|suggests|suggested)")
_MENTIONED = r"(?:mentioned|cited|named|listed|referred to|brought up|discussed)"
_LIST = re.compile(
    rf"^(?:which|what|name|list)\b(?:\s+[\w'’-]+){{0,3}}?\s+{_COUNT}\s+[\w'’-]*s\b"
    rf"|^(?:which|what|name|list)\b(?:\s+[\w'’-]+){{0,2}}?\s+{_KINDS}\b"
    rf"|^(?:name|list)\s+(?:the\s+|all\s+|some\s+)?[\w'’-]+s\b"
    rf"|^what are the (?:main |key |core )?{_KINDS}\b"
    # "which treaties or agreements come up in...", "what reports does she cite?": things, plural, mentioned
    # ("Which accords did Paris hope to push forward?" asks one fact)
    rf"|^(?:which|what)\s+(?:[\w'’-]+\s+)?[\w'’-]{{2,}}[^siu\W]s(?:,\s*[\w'’-]+s)*(?:,?\s+(?:or|and)\s+[\w'’-]+s)?\s+"
    rf"(?:(?:are|were|get|got|is|was)\s+{_MENTIONED}|(?:does|do|did)\s+.{{1,60}}?\b{_MENTION}|{_MENTION})\b"
    # "... list them, please": the user says so
    r"|\b(?:list them|give me a list|as a list|in a list|make a list|bullet(?:ed)? (?:list|points))\b",
    re.I)


_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_SENTENCES = re.compile(rf"\b(?:in|with|using)\s+({'|'.join(_NUMBERS)}|[1-8])\s+(?:short\s+|brief\s+)?sentences?\b", re.I)


_ITEMS = re.compile(rf"\b({'|'.join(_NUMBERS)}|[1-8])\s+(?:[\w'’-]+\s+){{0,2}}?[\w'’-]*[^s\W]s\b", re.I)


def asked_items(question: str) -> int | None:
    """How many items a list question asks for ("What are the two shortcomings...?"), if it says.

    >>> asked_items("What are the two shortcomings of his vision?"), asked_items("Which three main pillars?")
    (2, 3)
    >>> asked_items("Which subjects were on the agenda?"), asked_items("What did the two sides discuss?")
    (None, 2)
    """
    found = _ITEMS.search(question)
    if not found:
        return None
    word = found.group(1).lower()
    return _NUMBERS.get(word) or int(word)


# Plural words of a list question that are not the kind of thing it asks for: kinds whose items never
# carry the word ("subjects": cyber-security, space...), groups of actors (the text names "Eastern
# Europeans", not "the allies Eastern Europeans"), document nouns, and verbs and function words ending in s.
_NOT_KINDS = re.compile(rf"^(?:{_KINDS}|{_MENTION}|articles|documents|pieces|texts|sources|analyses"
                        r"|papers|reports|files|passages|authors|does|is|was|has|its|his|this|thus|us|as|across|less"
                        r"|unless|various|says|talks|quotes|includes|plus|news|things|ones|others|kinds|types|sorts"
                        r"|makes|gives|takes|lays|sets|puts|keeps|plays|tells|uses|needs|wants|sees|seems|remains|becomes"
                        r"|states|terms|means|times|years|days|months|words|pls|yes|lots|plans"
                        r"|allies|partners|leaders|members|officials|nations|governments|powers|players|actors"
                        r"|people|persons|experts|critics|neighbors|neighbours|friends|enemies|adversaries|rivals"
                        r"|stakeholders|figures|politicians|diplomats|individuals|groups|parties)$")
_PLURAL = re.compile(r"\b[a-z][a-z-]{2,}s\b")
# the noun phrase a list asks for: "Which Macron speeches, trips and interviews | does...", "list the treaties | mentioned..."
_ASKED_FOR = re.compile(r"^(?:which|what|list|name|give me)\s+(?!(?:does|do|did|is|are|was|were|has|have|had)\b)(.{3,80}?)(?=\s+(?:does|do|did|is|are|was|were|has|have|had"
                        r"|where|when|that|which|who|mentioned|cited|named|listed|quoted|in|from|of|by|across|for|at|on"
                        r"|with|come|came|appear|appears|appeared)\b|\s*[?.!]|$)", re.I)


def asked_kinds(question: str) -> tuple[str, ...]:
    """The kinds of thing a list question asks for, each as its singular and plural form, from its
    plural words ("Which speeches and treaties does she cite?" -> speech, speeches, treaty, treaties).

    >>> asked_kinds("Which Macron speeches, trips and interviews does Momtaz quote from?")
    ('speech', 'speeches', 'trip', 'trips', 'interview', 'interviews')
    >>> asked_kinds("list the treaties and agreements mentioned"), asked_kinds("Which subjects were covered?")
    (('treaty', 'treaties', 'agreement', 'agreements'), ())
    >>> asked_kinds("Which allies and partners does the author mention?")  # groups of actors: named, not by kind
    ()
    """
    asked = _ASKED_FOR.match(_asked(question))
    kinds: list[str] = []
    for word in _PLURAL.findall(asked.group(1).lower().replace("’", "'") if asked else ""):
        if _NOT_KINDS.match(word) or word.endswith(("ss", "us", "is", "'s")):
            continue
        if word.endswith("ies"):
            singular = word[:-3] + "y"
        elif word.endswith(("ches", "shes", "sses", "xes", "zes")):
            singular = word[:-2]
        else:
            singular = word[:-1]
        kinds += [singular, word]
    return tuple(dict.fromkeys(kinds))


def asked_sentences(question: str) -> int | None:
    """How many sentences the user asked for ("Summarize it in three sentences."), if they did.

    >>> asked_sentences("Summarize the first article in three sentences."), asked_sentences("Summarize it.")
    (3, None)
    """
    found = _SENTENCES.search(question)
    if not found:
        return None
    word = found.group(1).lower()
    return _NUMBERS.get(word) or int(word)


# "According to Momtaz, why...", "In the first article, what...": the question proper follows the comma.
# "joe biden - what role does he play?": a topic named first, then the question.
_FIRST = r"([^,?:–—-]{1,40}?)\s[–—:-]\s+(?=[a-z]+\s)"  # the topic, then the question
_LEAD = re.compile(rf"^(?:(?:according to|in|per|for|from|based on|briefly|so|and|now)\b[^,?]{{0,60}},\s*|{_FIRST})", re.I)
# "Can you list...", "I'd like to know what role...", "Please tell me why...": a request around the question.
_POLITE = re.compile(r"^(?:(?:can|could|would|will) you(?: please)?|please|i(?:['’]d| would) like to know"
                     r"|i want to know|i wonder|do you know|tell me(?=\s+(?:who|what|why|how|which|where|when)\b))"
                     r"(?:,\s*|\s+)", re.I)
_CONTRACTED = re.compile(r"\b(who|what|where|how|when|why)['’]s\b", re.I)  # "who's pierre vimont?"


def _asked(question: str) -> str:
    """The question proper, as the word rules read it: spaces collapsed, "who's" written out, and the
    lead-in ("According to Momtaz, ...") and the request around it ("Can you ...") taken off.

    >>> _asked("Can you list the areas he named?"), _asked("who's pierre vimont?")
    ('list the areas he named?', 'who is pierre vimont?')
    >>> _asked("I'd like to know, according to Faure, what role Trump plays.")
    'what role Trump plays.'
    """
    asked = _CONTRACTED.sub(r"\1 is", " ".join(question.split()))
    for _ in range(3):
        shorter = _POLITE.sub("", _LEAD.sub("", asked))
        if shorter == asked:
            break
        asked = shorter
    return asked


# "pierre vimont - who is he?": the topic named first is the one asked to be described.
_TOPIC_FIRST = re.compile(rf"^{_FIRST}")
_WHO_THEY = re.compile(r"^(?:(?:who|what)\s+(?:is|was|are|were)|what\s+(?:role|part)\s+(?:does|did|do))"
                       r"\s+(?:he|she|it|they|this|that)\b", re.I)


def _description(question: str) -> str | None:
    """What a description question describes ("" when its wording does not say), or None when
    ``question`` does not ask for a description."""
    question = " ".join(question.split())
    q = _asked(question)
    first = _TOPIC_FIRST.match(question)
    if first and _WHO_THEY.match(q):
        return first.group(1).strip()
    found = _DESCRIBE.search(q) or _THING.search(q)
    if not found:
        return None
    named = found.groupdict()
    return (named.get("name") or named.get("typed") or named.get("inner") or named.get("player")
            or named.get("plays") or named.get("portrayed") or named.get("thing") or "").strip()


def described(question: str) -> str:
    """What a description question asks to be described, when its wording says: "" otherwise.

    >>> described("Who is Rym Momtaz?"), described("What are the Minsk agreements that Faure mentions?")
    ('Rym Momtaz', 'Minsk agreements')
    >>> described("What was the Munich Security Conference speech about?"), described("Tell me about trust.")
    ('Munich Security Conference speech', '')
    >>> described("pierre vimont - who is he and what did he do?"), described("who is pierre vimont")
    ('pierre vimont', 'pierre vimont')
    """
    return _description(question) or ""


def classify(question: str) -> Shape:
    """The shape of the answer ``question`` wants; ``SHAPES["fact"]`` unless its words say otherwise.

    >>> [classify(q).name for q in ("Summarize the first article.", "How did his stance change from 2022 to 2023?",
    ...  "Why did the talks fail?", "Which subjects were the talks to cover?", "How many groups met?")]
    ['summary', 'compare', 'explain', 'list', 'fact']
    """
    q = _asked(question)
    if _SUMMARY.search(q):
        return SHAPES["summary"]
    if _COMPARE.search(q):
        return SHAPES["compare"]
    if _description(question) is not None:
        return SHAPES["describe"]
    if _LIST.search(q):
        return SHAPES["list"]
    if _EXPLAIN.search(q):
        return SHAPES["explain"]
    return SHAPES["fact"]
