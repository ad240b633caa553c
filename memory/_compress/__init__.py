"""Reversible tool-output compression: structure-aware digests and natural-boundary chunks.

A long tool output is archived byte-exact elsewhere and replaced in the prompt by a
:class:`Digest` from :func:`compress`: lossless (rows, minified JSON) when that fits the
budget, else a kind-specific summary (JSON schema, log errors and repeats, search matches
by file, code outline, table ranges, diff stats, readable HTML, key sentences) in which
every stated number is the original's. :func:`chunk` cuts an output into pieces on its
natural boundaries for embedding and recall; :mod:`memory._compress.delta` writes a
repeated output as a change to an earlier one.
"""

from memory._compress.base import Chunk, Compressor, Counter, Digest, DigestKind
from memory._compress.chunk import chunk
from memory._compress.dispatch import compress, detect_kind

__all__ = [
    "Chunk",
    "Compressor",
    "Counter",
    "Digest",
    "DigestKind",
    "chunk",
    "compress",
    "detect_kind",
]
