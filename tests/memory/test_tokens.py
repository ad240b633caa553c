"""Token counting: exact tiktoken counts offline, OpenAI's chat overhead, user counters."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from pathlib import Path

import pytest
import tiktoken
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
)
from langchain_core.messages.utils import count_tokens_approximately

from memory import (
    CallableCounter,
    ChatModelCounter,
    ConfigError,
    ConversationMemory,
    TiktokenCounter,
)
from memory._media import PDF_PAGE_TOKENS, image_size
from memory._tokens import (
    DEFAULT_SAFETY_MARGIN,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_TOOL_CALL,
    counter_for_model,
    encoding_for_model,
    resolve_counter,
    seed_tiktoken_cache,
)

# OpenAI cookbook, "How to count tokens with tiktoken": 129 tokens for gpt-3.5/gpt-4
# (cl100k_base) and 124 for gpt-4o/gpt-4o-mini (o200k_base), as billed by the API.
COOKBOOK_EXAMPLE = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more time to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "expected"), [("gpt-4", 129), ("gpt-3.5-turbo", 129), ("gpt-4o", 124)]
)
def test_cookbook_example_matches_openai(model: str, expected: int) -> None:
    counter = counter_for_model(model)
    assert counter.count_messages(convert_to_messages(COOKBOOK_EXAMPLE)) == expected


@pytest.mark.parametrize(
    ("model", "encoding", "exact"),
    [
        ("gpt-4o-mini", "o200k_base", True),
        ("gpt-4.1", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("gpt-4", "cl100k_base", True),
        ("gpt-3.5-turbo", "cl100k_base", True),
        ("claude-3-5-haiku-latest", "o200k_base", False),
        ("llama-3.1-8b", "o200k_base", False),
        (None, "o200k_base", True),
    ],
)
def test_encoding_for_model(model: str | None, encoding: str, exact: bool) -> None:
    assert encoding_for_model(model) == (encoding, exact)


def test_tiktoken_loads_offline_from_seeded_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    seed_tiktoken_cache()
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
    )
    # tiktoken's own loader reads the seeded file (it would fail on a network fetch here).
    ranks = tiktoken.load.load_tiktoken_bpe(
        url, expected_hash="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
    )
    assert len(ranks) == 199998
    assert tiktoken.encoding_for_model("gpt-4o").encode("hello world") == [24912, 2375]


def test_corrupted_cache_file_is_replaced(tmp_path: Path) -> None:
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cached = tmp_path / hashlib.sha1(url.encode()).hexdigest()
    cached.write_bytes(b"garbage")
    seed_tiktoken_cache(tmp_path)
    assert hashlib.sha256(cached.read_bytes()).hexdigest().startswith("223921b7")


def test_disabled_cache_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    with pytest.raises(ConfigError, match="TIKTOKEN_CACHE_DIR"):
        seed_tiktoken_cache()


JAPANESE = "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。" * 20
CODE = "def f(x: int) -> int:\n    return {'a': [x, x ** 2]}['a'][0]\n" * 30
JSON_TEXT = json.dumps([{"id": i, "ok": i % 2 == 0, "tags": ["x", "y"]} for i in range(60)])


@pytest.mark.parametrize("text", [JAPANESE, CODE, JSON_TEXT])
def test_counts_are_exact_where_the_approximation_is_far_off(
    text: str, counter: TiktokenCounter
) -> None:
    exact = len(tiktoken.get_encoding("o200k_base").encode(text))
    assert counter.count(text) == exact
    message = HumanMessage(text)
    assert counter.count_message(message) == TOKENS_PER_MESSAGE + 1 + exact  # role "user"
    approx = count_tokens_approximately([message])
    # LangChain's chars/4 estimate is off by a wide factor on these texts; ours is exact.
    assert max(approx, exact) / min(approx, exact) > 1.3


def test_tool_call_and_result_overhead(counter: TiktokenCounter) -> None:
    enc = tiktoken.get_encoding("o200k_base")
    call = AIMessage("", tool_calls=[{"name": "ls", "args": {"path": "/tmp"}, "id": "call_1"}])
    arguments = json.dumps({"path": "/tmp"})
    expected_call = (
        TOKENS_PER_MESSAGE
        + len(enc.encode("assistant"))
        + len(enc.encode(""))
        + TOKENS_PER_TOOL_CALL
        + len(enc.encode("call_1"))
        + len(enc.encode("ls"))
        + len(enc.encode(arguments))
    )
    assert counter.count_message(call) == expected_call
    result = ToolMessage("a.txt\nb.txt", tool_call_id="call_1")
    expected_result = (
        TOKENS_PER_MESSAGE
        + len(enc.encode("tool"))
        + len(enc.encode("call_1"))
        + len(enc.encode("a.txt\nb.txt"))
    )
    assert counter.count_message(result) == expected_result
    total = counter.count_messages([call, result])
    assert total == REPLY_PRIMING_TOKENS + expected_call + expected_result


def _sent_tokens(messages: list[dict[str, object]]) -> int:
    """What OpenAI bills for these dicts, counted here from the cookbook's rule alone."""
    enc = tiktoken.get_encoding("o200k_base")
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "tool_calls":
                assert isinstance(value, list)
                for call in value:
                    parts = (call["id"], call["function"]["name"], call["function"]["arguments"])
                    total += TOKENS_PER_TOOL_CALL + sum(len(enc.encode(p)) for p in parts)
            elif isinstance(value, str):
                total += len(enc.encode(value)) + (key == "name")
    return total


def test_escaped_tool_call_arguments_count_as_they_are_sent() -> None:
    # json.dumps escapes non-ASCII by default; to_openai sends the model's own string
    # (escapes and all), so that is what is counted: the budget holds for what is sent.
    arguments = json.dumps({"query": "北京上海广州深圳的天气怎么样" * 3, "city": "Zürich"})
    with ConversationMemory.open(":memory:", session="t", budget=1000, model="gpt-4o") as mem:
        for i in range(6):
            call = {"id": f"c{i}", "type": "function",
                    "function": {"name": "search", "arguments": arguments}}  # fmt: skip
            mem.add([
                {"role": "user", "content": f"天气 {i}?"},
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": f"c{i}", "content": "晴"},
                {"role": "assistant", "content": "晴天。"},
            ])  # fmt: skip
        prompt = mem.assemble(system="sys")
    sent = prompt.to_openai()
    assert any("\\u" in str(m.get("tool_calls")) for m in sent)  # sent as written
    assert prompt.tokens == _sent_tokens(sent) <= 1000


def _png(width: int, height: int) -> str:
    """Base64 of a PNG header of the given size (the counters read only the header)."""
    header = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", width, height)
    return base64.b64encode(header + b"\x08\x02\x00\x00\x00").decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + b"\x00" * 9
    return base64.b64encode(b"\xff\xd8" + app0 + sof).decode()


def _image(data: str, detail: str | None = None, media: str = "png") -> HumanMessage:
    url: dict[str, str] = {"url": f"data:image/{media};base64,{data}"}
    if detail:
        url["detail"] = detail
    return HumanMessage([{"type": "image_url", "image_url": url}])


def _image_cost(counter: TiktokenCounter, message: HumanMessage) -> int:
    return counter.count_message(message) - counter.count_message(HumanMessage([]))


@pytest.mark.parametrize(
    ("model", "detail", "size", "expected"),
    [
        ("gpt-4o", "high", (1024, 1024), 765),  # OpenAI's own worked example
        ("gpt-4o", "low", (1024, 1024), 85),
        ("gpt-4o", None, (2048, 4096), 1105),  # auto = high: 768x1536, 2x3 tiles
        ("gpt-4o-mini", "high", (1024, 1024), 25_501),
        ("gpt-4o-mini", "low", (1024, 1024), 2_833),
        ("claude-sonnet-4", None, (1000, 750), 1000),  # width x height / 750
        ("claude-sonnet-4", None, (3136, 3136), 3279),  # resized to 1568 on the long edge
    ],
)
def test_images_count_by_the_providers_rules(
    model: str, detail: str | None, size: tuple[int, int], expected: int
) -> None:
    counter = counter_for_model(model, margin=0.0)
    assert _image_cost(counter, _image(_png(*size), detail)) == expected
    assert _image_cost(counter, _image(_jpeg(*size), detail, "jpeg")) == expected


def test_an_image_of_unknown_size_counts_the_most_it_can() -> None:
    counter = counter_for_model("gpt-4o")
    by_url = HumanMessage([{"type": "image_url", "image_url": {"url": "https://x/y.png"}}])
    assert _image_cost(counter, by_url) == 85 + 170 * 8
    assert image_size(b"not an image") is None


def test_a_pdf_counts_by_pages_not_by_its_base64() -> None:
    pages = b"".join(b"%d 0 obj << /Type /Page >> endobj\n" % i for i in range(3))
    pdf = b"%PDF-1.4\n" + pages + b"x" * 150_000
    data = base64.b64encode(pdf).decode()
    block = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{data}"}}
    counter = counter_for_model("gpt-4o")
    cost = counter.count_message(HumanMessage([block])) - counter.count_message(HumanMessage([]))
    assert cost == 3 * PDF_PAGE_TOKENS  # not ~136,000 tokens of base64 text


def test_unknown_tokenizers_get_a_bound_for_every_script() -> None:
    claude = counter_for_model("claude-sonnet-4")
    exact = counter_for_model("gpt-4o")
    for text in ("plain English words here", "中文的句子一共有十二个字", "ภาษาไทยยาวมาก"):
        assert claude.count(text) >= math.ceil(exact.count(text) * 1.1)
    thai = "ภาษาไทยยาวมาก"
    assert claude.count(thai) >= len(thai.encode("utf-8"))  # byte fallback cannot exceed it


def test_a_counter_that_fails_or_counts_nothing_is_refused() -> None:
    def broken(text: str) -> int:
        raise RuntimeError("tokenizer not loaded")

    with pytest.raises(ConfigError, match="failed on a sample"):
        ConversationMemory.open(":memory:", session="s", token_counter=broken)
    with pytest.raises(ConfigError, match="positive int"):
        ConversationMemory.open(":memory:", session="s", token_counter=lambda text: 0)


def test_non_openai_models_get_a_safety_margin() -> None:
    exact = counter_for_model("gpt-4o")
    claude = counter_for_model("claude-3-5-sonnet")
    text = "The quick brown fox jumps over the lazy dog. " * 40
    assert claude.count(text) == -(-exact.count(text) * (1 + DEFAULT_SAFETY_MARGIN) // 1)
    assert counter_for_model("claude-3-5-sonnet", margin=0.0).count(text) == exact.count(text)
    with pytest.raises(ConfigError):
        TiktokenCounter("o200k_base", margin=-0.1)
    with pytest.raises(ConfigError):
        TiktokenCounter("p50k_base")


def test_lone_surrogates_and_special_tokens_are_counted(counter: TiktokenCounter) -> None:
    assert counter.count("abc\ud800def") > 0
    assert counter.count("<|endoftext|>") > 1  # plain text, not a special token


def test_callable_counter_adds_openai_overhead() -> None:
    words = CallableCounter(lambda text: len(text.split()), name="words")
    message = SystemMessage("one two three")
    assert words.count_message(message) == TOKENS_PER_MESSAGE + 1 + 3
    assert words.count_messages([message, message]) == REPLY_PRIMING_TOKENS + 2 * 7


def test_chat_model_counter_uses_the_models_tokenizer() -> None:
    model = FakeListChatModel(responses=["ok"], custom_get_token_ids=lambda t: list(t.encode()))
    chat_counter = ChatModelCounter(model)
    assert chat_counter.count("abcd") == 4
    assert chat_counter.count_messages([HumanMessage("abcd")]) > 4
    assert resolve_counter(model, model=None).name == chat_counter.name


def test_resolve_counter_accepts_callables_and_rejects_others() -> None:
    assert resolve_counter(len, model=None).count("abcd") == 4
    assert resolve_counter(None, model="gpt-4").name == "tiktoken:cl100k_base"
    with pytest.raises(ConfigError, match="token_counter"):
        resolve_counter(42, model=None)  # type: ignore[arg-type]
