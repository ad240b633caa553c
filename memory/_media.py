"""Tokens of images, files and audio in a prompt, by the providers' published rules.

Images (sizes read from the image's own header when the data is inline):

- OpenAI tile models (gpt-4o, gpt-4.1, gpt-5, o-series; platform.openai.com/docs/guides/
  images-vision, "Calculating costs", read in 2025): ``detail="low"`` costs the base;
  ``high`` (and ``auto``) fits the image in 2048x2048, scales its short side to 768,
  and adds a per-tile cost for each 512-pixel tile. gpt-4o: base 85, tile 170 (1024x1024
  high = 765); gpt-4o-mini: base 2,833, tile 5,667 (1024x1024 high = 25,501).
- OpenAI patch models (gpt-4.1-mini, gpt-4.1-nano, o4-mini; same page): 32-pixel
  patches, at most 1,536, times a multiplier (1.62, 2.46, 1.72).
- Anthropic (docs.anthropic.com/en/docs/build-with-claude/vision): width x height / 750,
  after a resize that keeps the long edge within 1,568 pixels.

An image whose size cannot be read (a URL) counts as the largest the rule allows. Files
and documents count by a bound, never as the text of their base64 data: a PDF counts
``PDF_PAGE_TOKENS`` per page (Anthropic: 1,500-3,000 text tokens per page plus the page
as an image), other files one token per 4 bytes. Audio counts ``AUDIO_TOKENS_PER_SECOND``
(OpenAI's audio models: about 1 token per 100 ms), its length read from a WAV header or
estimated at 128 kbit/s.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "PDF_PAGE_TOKENS",
    "MediaRule",
    "block_tokens",
    "image_size",
    "rule_for_model",
]

PDF_PAGE_TOKENS = 4_600
"""Upper estimate per PDF page: 3,000 text tokens plus the page as a ~1,600-token image."""
AUDIO_TOKENS_PER_SECOND = 10
PDF_BYTES_PER_PAGE = 50_000
"""Pages assumed per byte of a PDF whose page objects are compressed."""
_HEADER_BYTES = 256 * 1024
_DATA_URL = re.compile(r"^data:(?P<media>[\w/+.-]+);base64,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class MediaRule:
    """How one model family counts an image.

    Attributes:
        kind: ``"tiles"`` (OpenAI 512-pixel tiles), ``"patches"`` (OpenAI 32-pixel
            patches) or ``"area"`` (Anthropic: pixels / 750).
        base: Tokens every image costs (tiles: the low-detail cost).
        unit: Tokens per tile (tiles) or the multiplier (patches).
    """

    kind: Literal["tiles", "patches", "area"]
    base: float = 0.0
    unit: float = 0.0


GPT4O = MediaRule("tiles", 85, 170)
GPT4O_MINI = MediaRule("tiles", 2833, 5667)
ANTHROPIC = MediaRule("area")
_PATCHES = {"gpt-4.1-mini": 1.62, "gpt-4.1-nano": 2.46, "o4-mini": 1.72}


def rule_for_model(model: str | None) -> tuple[MediaRule, ...]:
    """Return the image rules for a model name; unknown models get every rule (the max)."""
    name = (model or "gpt-4o").lower()
    for prefix, multiplier in _PATCHES.items():
        if name.startswith(prefix):
            return (MediaRule("patches", 0, multiplier),)
    if name.startswith("gpt-4o-mini"):
        return (GPT4O_MINI,)
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "gpt-4")):
        return (GPT4O,)
    if name.startswith("claude"):
        return (ANTHROPIC,)
    return (GPT4O, ANTHROPIC, MediaRule("patches", 0, max(_PATCHES.values())))


def _image_tokens(rule: MediaRule, size: tuple[int, int] | None, detail: str) -> int:
    if rule.kind == "area":
        width, height = size or (1568, 1568)
        scale = min(1.0, 1568 / max(width, height, 1))
        return math.ceil(width * scale * height * scale / 750)
    if rule.kind == "patches":
        width, height = size or (2048, 2048)
        patches = math.ceil(width / 32) * math.ceil(height / 32)
        if patches > 1536:
            shrink = math.sqrt(1536 * 32 * 32 / (width * height))
            patches = math.floor(width * shrink / 32) * math.floor(height * shrink / 32)
        return math.ceil(min(patches, 1536) * rule.unit)
    if detail == "low":
        return int(rule.base)
    if size is None:
        return int(rule.base + rule.unit * 8)  # the most tiles an image can take (4 x 2)
    fit = min(1.0, 2048 / max(*size, 1))
    scaled = (size[0] * fit, size[1] * fit)
    short = min(1.0, 768 / max(min(scaled), 1))
    tiles = math.ceil(scaled[0] * short / 512) * math.ceil(scaled[1] * short / 512)
    return int(rule.base + rule.unit * tiles)


def _decode(data: str, limit: int = _HEADER_BYTES) -> bytes:
    """Decode the first ``limit`` bytes of base64 data (invalid data: empty)."""
    chunk = data[: (limit // 3 + 1) * 4]
    try:
        return base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=False)
    except (binascii.Error, ValueError):
        return b""


def image_size(head: bytes) -> tuple[int, int] | None:
    """Read ``(width, height)`` from a PNG, GIF, JPEG or WebP header; None if unknown."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return int(width), int(height)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        return _webp_size(head)
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(head)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(head[24:27], "little") + 1
        return width, int.from_bytes(head[27:30], "little") + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 9 < len(head):
        if head[position] != 0xFF:
            position += 1
            continue
        marker = head[position + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            position += 2
            continue
        length = struct.unpack(">H", head[position + 2 : position + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[position + 5 : position + 9])
            return int(width), int(height)
        position += 2 + length
    return None


def _inline(block: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Return ``(media_type, base64_data)`` of a block's inline data, if any."""
    for key in ("image_url", "file", "input_audio"):
        inner = block.get(key)
        if isinstance(inner, Mapping):
            url = inner.get("url") or inner.get("file_data") or inner.get("data")
            if isinstance(url, str):
                match = _DATA_URL.match(url)
                if match:
                    return match["media"], match["data"]
                if key == "input_audio":
                    return f"audio/{inner.get('format', 'wav')}", url
    source = block.get("source")
    if isinstance(source, Mapping) and isinstance(source.get("data"), str):
        return source.get("media_type"), source["data"]
    for key in ("base64", "data"):
        if isinstance(block.get(key), str):
            return block.get("mime_type"), block[key]
    return None, None


def block_tokens(block: Mapping[str, Any], rules: tuple[MediaRule, ...]) -> int | None:
    """Tokens of an image, file, document or audio block; None for other blocks."""
    kind = block.get("type")
    media, data = _inline(block)
    if kind in ("image_url", "image", "input_image"):
        detail = "high"
        if isinstance(block.get("image_url"), Mapping):
            detail = str(block["image_url"].get("detail") or "high")
        size = image_size(_decode(data)) if data else None
        return max(_image_tokens(rule, size, detail) for rule in rules)
    if kind in ("file", "document"):
        return _file_tokens(media, data)
    if kind in ("input_audio", "audio"):
        return _audio_tokens(data)
    return None


def _file_tokens(media: str | None, data: str | None) -> int:
    if not data:
        return PDF_PAGE_TOKENS  # a file by reference: one page at least
    size = len(data) * 3 // 4
    if media == "application/pdf" or data.startswith("JVBERi0"):  # "%PDF-"
        pages = len(re.findall(rb"/Type\s*/Page(?!s)", _decode(data, len(data))))
        # Page objects inside compressed object streams cannot be seen: by size then.
        return PDF_PAGE_TOKENS * max(1, pages or math.ceil(size / PDF_BYTES_PER_PAGE))
    return max(1, size // 4)


def _audio_tokens(data: str | None) -> int:
    if not data:
        return AUDIO_TOKENS_PER_SECOND * 60
    head = _decode(data, 64)
    size = len(data) * 3 // 4
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" and len(head) >= 32:
        byte_rate = struct.unpack("<I", head[28:32])[0]
        seconds = size / byte_rate if byte_rate else size / 16_000
    else:
        seconds = size / 16_000  # 128 kbit/s
    return max(1, math.ceil(seconds * AUDIO_TOKENS_PER_SECOND))
