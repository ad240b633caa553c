"""The default embedder: MiniLM through ONNX Runtime int8, exported once and cached."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from pydantic import Field

from memory import ConversationMemory, _embed, _onnx
from memory._embed import (
    FLOAT_BATCH,
    INT8_BATCH,
    MiniLMEmbeddings,
    available_backend,
    embedder_name,
    load_minilm,
)
from memory._onnx import cached_model_path, open_onnx_minilm, plan_batches

SENTENCES = [
    "Where did Caroline go camping last summer?",
    "I just adopted a puppy named Max and he chews everything.",
    "error: disk quota exceeded while writing /var/log/syslog",
    "Melanie painted a sunset over the lake in May 2022.",
    "Thanks, see you tomorrow at the ferry terminal at nine.",
]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The int8 model exported once for the whole test run (about 10 s on 2 cores)."""
    directory = tmp_path_factory.mktemp("onnx-cache")
    open_onnx_minilm("int8", directory=directory)
    return cached_model_path("int8", directory)


@pytest.fixture
def copying_export(exported: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the export by a copy of the session's export; records each target."""
    targets: list[Path] = []

    def export(variant: str, target: Path) -> float:
        targets.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(exported, target)
        return 0.0

    monkeypatch.setattr(_onnx, "export_model", export)
    return targets


def test_int8_vectors_agree_with_the_torch_model(exported: Path) -> None:
    onnx_vectors = open_onnx_minilm("int8", directory=exported.parent).encode(SENTENCES)
    torch_vectors = load_minilm("torch").encode(SENTENCES)
    assert onnx_vectors.shape == torch_vectors.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(onnx_vectors, axis=1), 1.0, atol=1e-4)
    cosines = (onnx_vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.98, cosines


def test_batches_keep_the_order_of_the_texts(exported: Path) -> None:
    model = open_onnx_minilm("int8", directory=exported.parent)
    texts = [*SENTENCES, "ok", SENTENCES[0] * 40]
    together = model.encode(texts, batch_size=3)
    alone = np.vstack([model.encode([text]) for text in texts])
    # Dynamic quantization scales activations per batch: rows move a little with their
    # batch-mates (the 3-token "ok" most, to about 0.96), but each stays by far closest to
    # its own text's vector.
    similarity = together @ alone.T
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    assert similarity.diagonal().min() > 0.94, similarity.diagonal()
    assert np.median(similarity.diagonal()) > 0.98, similarity.diagonal()


def test_a_text_that_runs_alone_gets_the_vector_it_gets_by_itself(exported: Path) -> None:
    model = open_onnx_minilm("int8", directory=exported.parent)
    long_text = SENTENCES[2] * 20  # over half the batch's token budget: never shares a run
    assert np.array_equal(model.encode([long_text]), model.encode([*SENTENCES, long_text])[-1:])


def test_the_int8_default_gives_a_text_one_vector_whatever_it_is_embedded_with() -> None:
    # Batched, int8 activations share one scale per run: batch-mates moved a text's vector.
    embedder = MiniLMEmbeddings()
    assert embedder.batch_size == INT8_BATCH == 1
    texts = [*SENTENCES, "ok"]
    together = np.array(embedder.embed_documents(texts))
    again = np.array(embedder.embed_documents([texts[5], "a wholly different text", texts[3]]))
    assert np.array_equal(together[3], again[2]) and np.array_equal(together[5], again[0])
    assert np.array_equal(together[3], np.array(embedder.embed_query(texts[3])))


def test_float_backends_run_batches_and_a_batch_size_below_one_is_refused() -> None:
    assert MiniLMEmbeddings(backend="onnx").batch_size == FLOAT_BATCH
    assert MiniLMEmbeddings(backend="onnx-int8", batch_size=8).batch_size == 8
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        MiniLMEmbeddings(batch_size=0)


def test_batches_group_texts_of_like_length_within_the_token_budget() -> None:
    lengths = [10, 256, 30, 12, 300, 9, 11]
    # Longest first; a text over the budget runs alone; 30 + 12 pad to 60 <= 64 tokens.
    assert plan_batches(lengths, batch_size=3, batch_tokens=64) == [[4], [1], [2, 3], [6, 0, 5]]


@given(st.lists(st.integers(1, 256), max_size=80), st.integers(1, 40), st.integers(1, 2048))
def test_batches_hold_every_text_once_within_their_limits(
    lengths: list[int], batch_size: int, batch_tokens: int
) -> None:
    batches = plan_batches(lengths, batch_size=batch_size, batch_tokens=batch_tokens)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        widest = lengths[batch[0]]
        assert widest == max(lengths[i] for i in batch)
        assert len(batch) == 1 or (len(batch) <= batch_size and len(batch) * widest <= batch_tokens)


def test_the_cache_is_reused_without_exporting_again(
    exported: Path, copying_export: list[Path]
) -> None:
    before = exported.stat().st_mtime_ns
    open_onnx_minilm("int8", directory=exported.parent)
    assert copying_export == []
    assert exported.stat().st_mtime_ns == before


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_broken_cache_file_is_exported_again(
    damage: str, exported: Path, copying_export: list[Path], tmp_path: Path
) -> None:
    target = cached_model_path("int8", tmp_path)
    data = exported.read_bytes()
    broken = {"truncated": data[: len(data) // 2], "garbage": b"not a model" * 100, "empty": b""}
    target.write_bytes(broken[damage])
    model = open_onnx_minilm("int8", directory=tmp_path)
    assert copying_export == [target]
    assert model.encode(["hello"]).shape == (1, 384)
    assert target.stat().st_size == exported.stat().st_size


def test_a_missing_cache_is_exported_into_the_configured_directory(
    copying_export: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_onnx.CACHE_DIR_ENV, str(tmp_path / "attic"))
    assert _onnx.cache_dir() == tmp_path / "attic"
    open_onnx_minilm("int8")
    assert copying_export == [cached_model_path("int8", tmp_path / "attic")]
    assert [p.name for p in (tmp_path / "attic").iterdir()] == [copying_export[0].name]


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(_onnx.CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _onnx.cache_dir() == tmp_path / "context-attic"


def test_export_writes_nothing_but_the_finished_file(exported: Path) -> None:
    assert [p.name for p in exported.parent.iterdir()] == [exported.name]


def test_without_onnxruntime_the_torch_model_runs_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "onnxruntime" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    fresh = available_backend.__wrapped__  # the cached one has already answered
    monkeypatch.setattr(_embed, "available_backend", fresh)
    with caplog.at_level(logging.WARNING, logger="memory._embed"):
        embedder = MiniLMEmbeddings()
    assert embedder.backend == "torch"
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "onnxruntime" in caplog.records[0].getMessage()
    assert embedder_name(embedder) == "all-MiniLM-L6-v2"


def test_each_backend_stores_its_vectors_under_its_own_name() -> None:
    names = {
        embedder_name(MiniLMEmbeddings(backend=backend))
        for backend in ("onnx-int8", "onnx", "torch")
    }
    assert names == {"all-MiniLM-L6-v2:onnx-int8", "all-MiniLM-L6-v2:onnx", "all-MiniLM-L6-v2"}
    assert embedder_name(MiniLMEmbeddings()) == "all-MiniLM-L6-v2:onnx-int8"


class _Backend(DeterministicFakeEmbedding):
    """A fake standing in for one MiniLM backend: its ``model`` names its vectors."""

    model: str = "torch"
    calls: list[list[str]] = Field(default_factory=list)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return super().embed_documents(texts)


def test_vectors_of_another_backend_are_embedded_again_not_mixed(db_path: Path) -> None:
    words = " ".join(f"word{i} value{i * 7}" for i in range(300))
    output = {"role": "tool", "tool_call_id": "c1", "content": words}
    call = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "t", "arguments": "{}"}}
        ],
    }
    before, after = _Backend(size=64), _Backend(size=64, model="onnx-int8")
    for embedder in (before, after, after):
        with ConversationMemory.open(
            db_path, session="s", embedder=embedder, compress_threshold=50
        ) as mem:
            if embedder is before:
                mem.add([{"role": "user", "content": "list"}, call, output])
            mem.wait_until_indexed(timeout=30)
    embedded_before = sum(map(len, before.calls))
    assert embedded_before > 0
    # The new backend embeds every chunk once (the third open reuses its vectors).
    assert sum(map(len, after.calls)) == embedded_before


def test_an_unwritable_cache_exports_to_a_private_folder_removed_at_exit(
    copying_export: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "a-file"  # the cache "directory" is a file: nothing can go there
    blocked.write_text("x", encoding="utf-8")
    at_exit: list[tuple[Any, ...]] = []
    monkeypatch.setattr(_onnx.atexit, "register", lambda *call, **_: at_exit.append(call))
    model = open_onnx_minilm("int8", directory=blocked)
    private = model.path.parent
    assert private != blocked and model.path.is_file()
    ((remove, folder),) = at_exit
    remove(folder, ignore_errors=True)  # what the interpreter runs at exit
    assert not private.exists()
