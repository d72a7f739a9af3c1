"""The answer pipeline end to end with fakes (keyword encoder, scripted generator)."""

import re

import pytest

from conftest import PARA, KeywordEncoder, ScriptedGenerator, write_corpus
from qa.answer import AnswerSettings
from qa.errors import InvalidArgument, InvalidQuestion
from qa.pipeline import Conversation, Pipeline
from qa.prompting.messages import build_messages, source_label
from qa.prompting.styles import DEMONSTRATED, SHORT_DEMONSTRATIONS, STYLES
from qa.settings import Settings
from qa.types import REFUSAL, Answer, Retrieved, Token


def make(seeds_copy, tmp_path, replies):
    generator = ScriptedGenerator(replies)
    settings = Settings(corpus=seeds_copy, index_dir=tmp_path / "idx")
    return Pipeline(settings, encoder=KeywordEncoder(), generator=generator), generator


def test_stream_yields_retrieved_tokens_then_one_verified_answer(seeds_copy, tmp_path):
    pipeline, generator = make(seeds_copy, tmp_path, ["Ambassador Pierre Vimont [1]."])
    events = list(pipeline.stream("Who was Macron's special envoy Pierre Vimont strategic dialogue?"))
    assert isinstance(events[0], Retrieved) and isinstance(events[-1], Answer)
    assert [type(e) for e in events[1:-1]] == [Token] * 4  # "Ambassador ", "Pierre ", "Vimont ", "[1]."
    answer = events[-1]
    assert not answer.refused and "Vimont" in answer.text
    document = pipeline.document_text(answer.citations[0].doc)
    for c in answer.citations:
        assert document[c.start : c.end] == c.text and "Pierre Vimont" in c.text
    assert answer.timings.first_token_s is not None and answer.timings.total_s >= answer.timings.first_token_s
    d = answer.to_dict()
    assert set(d) == {"question", "answer", "refused", "citations", "passages", "latency_s", "ttft_s"}


def test_prompt_numbers_snippets_and_keeps_system_prompt_fixed(seeds_copy, tmp_path):
    pipeline, generator = make(seeds_copy, tmp_path, [REFUSAL, REFUSAL])
    pipeline.answer("Who was the special envoy?")
    pipeline.answer("What about the INF treaty?")
    first, second = generator.prompts
    assert first[:-1] == second[:-1] and first[0]["role"] == "system"  # the whole prefix is fixed: cached
    user = first[-1]["content"]
    assert user.startswith("Passages:\n[1] «") and user.rstrip().endswith("Question: Who was the special envoy?")


@pytest.mark.parametrize(("title", "shown"), [
    ("Macron's Dialogue With Russia: A French Attempt to Fix the Architecture", "«Macron's Dialogue With Russia»"),
    ("Town History", "«Town History»"),
    ("Note: the harbour", "«Note: the harbour»"),  # one word before the colon is not a title of its own
    ("One Two Three Four Five Six Seven", "«One Two Three Four Five Six…»"),
])
def test_a_source_label_shows_the_title_without_its_subtitle(title, shown):
    assert source_label(title, "Ann Lee", "2020-05-01") == f"{shown} (by Ann Lee, 2020-05-01)"


@pytest.mark.parametrize("style", ["sentence", "short"])
def test_demonstrations_come_before_the_question_as_alternating_turns_in_the_real_format(style):
    shown = DEMONSTRATED[style]
    messages = build_messages([], "Who?", style=style)
    demos = messages[1:-1]
    assert len(demos) == 2 * len(shown) > 0
    assert [m["role"] for m in demos] == ["user", "assistant"] * len(shown)
    for (asked, reply), demo in zip(zip(demos[::2], demos[1::2]), shown):
        head, _, question = asked["content"].rpartition("\n\nQuestion: ")
        assert question == demo.question and head.startswith("Passages:\n[1] «")
        assert len(head.splitlines()) == 1 + len(demo.passages)
        assert reply["content"] == demo.reply
        assert reply["content"] == REFUSAL or re.search(r"\[\d\]\.?$", reply["content"])  # cited like a real reply
    assert any(d.reply == REFUSAL for d in shown)  # refusing is demonstrated too
    assert messages[-1] == {"role": "user", "content": "Passages:\n\nQuestion: Who?"}


def test_short_demonstrations_answer_with_a_span_copied_from_the_cited_passage():
    for demo in SHORT_DEMONSTRATIONS:
        if demo.reply == REFUSAL:
            continue
        span, n = re.fullmatch(r"(.+) \[(\d)\]", demo.reply).groups()
        assert span in demo.passages[int(n) - 1][1] and len(span.split()) <= 8


def test_short_style_asks_for_only_the_answer_words_and_still_cites(seeds_copy, tmp_path):
    generator = ScriptedGenerator(["Pierre Vimont [1]", "Pierre Vimont [1]"])
    base = Settings(corpus=seeds_copy, index_dir=tmp_path / "idx")
    short = Pipeline(base.with_(answer=AnswerSettings(style="short")), encoder=KeywordEncoder(), generator=generator)
    answer = short.answer("Who was Macron's special envoy for the strategic dialogue with Russia?")
    Pipeline(base, encoder=KeywordEncoder(), generator=generator).answer("Who was the special envoy?")
    short_system, sentence_system = (prompt[0]["content"] for prompt in generator.prompts)
    assert short_system == STYLES["short"] != sentence_system == STYLES["sentence"]
    assert "never a whole sentence" in short_system
    assert not answer.refused and answer.text == "Pierre Vimont [1]." and "Vimont" in answer.citations[0].text


def test_unknown_answer_style_is_a_typed_error():
    with pytest.raises(InvalidArgument, match="answer style must be one of sentence, short"):
        AnswerSettings(style="haiku")


def test_refusal_still_lists_the_closest_passages(seeds_copy, tmp_path):
    pipeline, _ = make(seeds_copy, tmp_path, ["The NATO Secretary General is Jens Stoltenberg [1]."])
    answer = pipeline.answer("Who is the Secretary General of NATO?")
    assert answer.refused and answer.text == REFUSAL and answer.citations == ()
    assert len(answer.passages) == 8 and answer.to_dict()["refused"] is True  # all a description searched


def test_irrelevant_question_is_refused_without_asking_the_model(seeds_copy, tmp_path):
    pipeline, generator = make(seeds_copy, tmp_path, ["should not be used"])
    answer = pipeline.answer("zzzz qqqq xxxx")
    assert answer.refused and generator.prompts == []


def follow_up(seeds_copy, tmp_path, rewrite_reply):
    """Ask about Vimont, then "and what was his role?" with the model replying ``rewrite_reply`` to the rewrite."""
    replies = iter(["Pierre Vimont [1].", rewrite_reply, REFUSAL])
    pipeline, generator = make(seeds_copy, tmp_path, lambda messages: next(replies))
    chat = Conversation(pipeline)
    chat.ask("Who was Macron's special envoy Pierre Vimont?")
    return chat.ask("and what was his role?"), generator.prompts


def test_follow_up_is_rewritten_before_retrieval(seeds_copy, tmp_path):
    second, prompts = follow_up(seeds_copy, tmp_path, "Who was Pierre Vimont's role for Macron?")
    assert second.standalone_question == "Who was Pierre Vimont's role for Macron?"
    rewrite, answer = prompts[1], prompts[2]
    assert "Conversation:" in rewrite[-1]["content"]
    assert rewrite[:-1] == answer[:-1]  # the answer prompt's fixed messages, served from the prefix cache


def test_a_follow_up_the_model_cannot_rewrite_is_asked_as_written_and_searched_with_its_context(seeds_copy, tmp_path):
    # the rewrite request answered instead of rewriting: that is no question to search for or to ask
    second, prompts = follow_up(seeds_copy, tmp_path, "He was the envoy [1].")
    assert second.standalone_question == "and what was his role?"
    assert prompts[2][-1]["content"].endswith("Question: and what was his role?")
    assert "Vimont" in second.passages[0].passage.text  # found through the previous question


@pytest.mark.parametrize("question", ["", "  ", "\x00"])
def test_empty_question_is_a_typed_error_before_any_loading(tmp_path, question):
    pipeline = Pipeline(Settings(corpus=tmp_path / "missing"), encoder=KeywordEncoder(), generator=ScriptedGenerator())
    with pytest.raises(InvalidQuestion):
        pipeline.answer(question)


def test_bad_k_is_a_typed_error(seeds_copy, tmp_path):
    pipeline, _ = make(seeds_copy, tmp_path, [REFUSAL])
    with pytest.raises(InvalidArgument):
        pipeline.answer("Who?", k=0)


def test_the_passage_budget_follows_the_style_unless_set():
    from dataclasses import replace

    sentence = AnswerSettings()
    assert sentence.budget < replace(sentence, style="short").budget  # short answers sit beside the match
    assert replace(sentence, context_tokens=333).budget == replace(sentence, style="short", context_tokens=333).budget == 333
    assert Settings.from_env({"QA_CONTEXT_TOKENS": "80"}).answer.budget == 80
    for bad in (0, -5, 2.5, True, "100"):
        with pytest.raises(InvalidArgument, match="context tokens must be a positive whole number"):
            AnswerSettings(context_tokens=bad)


@pytest.mark.parametrize(("threshold", "refused"), [(0.0, False), (1.01, True)])
def test_the_answer_measures_how_close_in_meaning_a_cited_sentence_is_to_the_question(tmp_path, monkeypatch,
                                                                                       threshold, refused):
    import qa.citation.verification

    corpus = write_corpus(tmp_path / "c", {
        "a.txt": "The envoy was the one named Pierre Vimont. Talks began in the spring of that year.",
        **{f"m{i}.txt": PARA.format(f"Filler story {i}") for i in range(3)},
    })
    pipeline = Pipeline(Settings(corpus=corpus, index_dir=tmp_path / "idx"), encoder=KeywordEncoder(),
                        generator=ScriptedGenerator(["Pierre Vimont [1]."]))
    monkeypatch.setattr(qa.citation.verification, "CLOSE_IN_MEANING", threshold)
    answer = pipeline.answer("Which delegate was the one they chose?")  # no content word of the sentence
    assert answer.refused is refused
    if not refused:
        assert answer.citations[0].text == "The envoy was the one named Pierre Vimont."
        assert any("close to it in meaning" in note for note in answer.notes)
