"""IDX file reader/writer (LeCun et al.'s MNIST format); DataError (genlab.errors) is re-exported
for genlab.data."""

from __future__ import annotations

import gzip
import hashlib
import math
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from genlab.errors import DataError  # defined there; callers may import it from here

# IDX header: two zero bytes, a dtype code byte, the number of dims, then one
# big-endian uint32 per dim; the data follows in big-endian C order.
_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[np.dtype, int] = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def socket_timeout(seconds: float) -> Iterator[None]:
    """Bound every blocking socket operation while downloading (torchvision sets no timeout)."""
    if seconds <= 0:
        raise ValueError(f"timeout_s must be > 0, got {seconds}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def is_gzip(path: Path) -> bool:
    """True when `path` starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def read_bytes(path: Path) -> bytes:
    """Whole content of `path`, transparently decompressed when it is gzip."""
    path = Path(path)
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError) as err:  # gzip raises EOFError/BadGzipFile when truncated
        raise DataError(f"{path}: cannot read ({err})") from err


def md5_bytes(data: bytes) -> str:
    """Hex MD5 digest of `data`."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def parse_idx_header(data: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Validate an IDX header; return (dtype, shape, offset of the payload)."""
    if len(data) < 4:
        raise DataError(f"{name}: not an IDX file (only {len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: bad IDX magic number {data[:4].hex()} (must start with 0000)")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise DataError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    if ndim == 0:
        raise DataError(f"{name}: IDX file declares 0 dimensions")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{name}: truncated IDX header ({len(data)} < {offset} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    return _DTYPES[code], shape, offset


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an (uncompressed) IDX file into a native-endian array."""
    dtype, shape, offset = parse_idx_header(data, name)
    expected = math.prod(shape) * dtype.itemsize
    got = len(data) - offset
    if got != expected:
        kind = "truncated" if got < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX file {kind}: shape {shape} needs {expected} payload bytes, found {got}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a numpy array of its declared shape."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: IDX file not found")
    return decode_idx(read_bytes(path), name=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """Bytes of `array` in IDX format (dtype must be one of the six IDX dtypes)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"array: dtype {array.dtype} has no IDX code; use one of {list(_CODES)}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array: ndim must be in 1..255, got {array.ndim}")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=_DTYPES[code]).tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8 typically) as an IDX file; gzip-compressed when `path` ends in .gz."""
    path = Path(path)
    data = encode_idx(array)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
