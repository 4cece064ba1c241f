"""File bytes to UTF-8 text: reading, decompression recognised by magic bytes, encodings and
byte-order marks.

gzip, bzip2, xz and single-file zip input is decompressed transparently (recognised by its magic
bytes, whatever the file is called); a UTF-8 byte-order mark is dropped and UTF-16/32 with a BOM
is decoded; other text must be UTF-8 unless ``encoding=`` says otherwise, and an invalid byte is
an error naming its line, column and byte.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .core import DatasetError

_BOM = codecs.BOM_UTF8


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; missing, unreadable or empty files raise :class:`DatasetError`."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: file not found")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from exc
    if buf.startswith(_BOM):  # utf-8-sig: the mark is not part of the first field
        buf = buf[len(_BOM):]
    if not buf or buf.isspace():
        raise DatasetError(f"{path}: empty file")
    return buf


_MAGIC = (  # (prefix, format); checked on the first bytes, whatever the file's name
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # empty zip
    (b"(\xb5/\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"PAR1", "parquet"),
)
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".zip", ".zst")


def sniff_format(head: bytes) -> str | None:
    """"gzip", "bzip2", "xz", "zip", "zstd", "7z", "rar", "parquet" from a file's first bytes,
    or None (plain text, presumably)."""
    for prefix, fmt in _MAGIC:
        if head.startswith(prefix):
            return fmt
    # bzip2: "BZh" + block size digit + the block (pi) or end-of-stream (sqrt pi) magic
    if head[:3] == b"BZh" and head[3:4] in b"123456789" and head[4:10] in (
            b"\x31\x41\x59\x26\x53\x59", b"\x17\x72\x45\x38\x50\x90"):
        return "bzip2"
    return None


def decompress(path, buf: bytes) -> tuple[bytes, str]:
    """``buf`` decompressed when it is gzip/bzip2/xz or a zip of one file (nested at most twice);
    returns (bytes, label for messages: the path, or ``path:member`` for a zip)."""
    label = str(path)
    for _ in range(3):
        fmt = sniff_format(buf[:16])
        if fmt in (None, "parquet"):
            return buf, label
        if fmt in ("zstd", "7z", "rar"):
            raise DatasetError(f"{label}: this is a {fmt} archive, which cannot be read directly; "
                               "decompress it first (gzip, bzip2, xz and zip are read as they are)")
        try:
            if fmt == "gzip":
                buf = gzip.decompress(buf)
            elif fmt == "bzip2":
                buf = bz2.decompress(buf)
            elif fmt == "xz":
                buf = lzma.decompress(buf)
            else:
                with zipfile.ZipFile(io.BytesIO(buf)) as zf:
                    members = [m for m in zf.infolist() if not m.is_dir()
                               and not m.filename.startswith("__MACOSX/")
                               and not Path(m.filename).name.startswith(".")]
                    if len(members) != 1:
                        names = ", ".join(m.filename for m in members[:5]) or "no files"
                        more = f" and {len(members) - 5} more" if len(members) > 5 else ""
                        raise DatasetError(f"{label}: zip archive holds {len(members)} files "
                                           f"({names}{more}); expected exactly one: unzip it and "
                                           "pass --param path=THE_FILE")
                    buf = zf.read(members[0])
                    label = f"{label}:{members[0].filename}"
        except DatasetError:
            raise
        except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error,
                lzma.LZMAError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{label}: {fmt} data is corrupt or truncated ({exc})") from exc
    return buf, label


def _utf8_error(label, buf: bytes, start: int, hint: str) -> DatasetError:
    line = buf.count(b"\n", 0, start) + 1
    col = start - (buf.rfind(b"\n", 0, start) + 1) + 1
    return DatasetError(f"{label}, line {line}, column {col} (byte {start + 1}): byte "
                        f"0x{buf[start]:02x} is not valid UTF-8; {hint}")


def to_utf8(label, buf: bytes, encoding: str | None = None) -> bytes:
    """``buf`` as UTF-8 text without a byte-order mark. Without ``encoding`` the text must be
    UTF-8 (UTF-16/32 with a BOM is converted); invalid bytes raise :class:`DatasetError` naming
    the line, column and byte."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DatasetError(f"encoding={encoding!r} is not a known text encoding "
                               "(e.g. utf-8, latin-1, cp1252)") from None
        try:
            text = buf.decode(encoding)
        except UnicodeDecodeError as exc:
            line = buf.count(b"\n", 0, exc.start) + 1
            raise DatasetError(f"{label}, line {line} (byte {exc.start + 1}): cannot decode as "
                               f"{encoding} ({exc.reason})") from None
        return text.lstrip("\ufeff").encode("utf-8")
    for bom, codec in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                       (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if buf.startswith(bom):
            try:
                return buf.decode(codec).encode("utf-8")
            except UnicodeDecodeError as exc:
                raise DatasetError(f"{label}, byte {exc.start + 1}: invalid {codec.upper()} text "
                                   f"({exc.reason})") from None
    if buf.startswith(_BOM):
        buf = buf[len(_BOM):]
    nul = buf.find(b"\x00")
    if nul >= 0:
        line = buf.count(b"\n", 0, nul) + 1
        raise DatasetError(f"{label}, line {line} (byte {nul + 1}): NUL byte: this is a binary "
                           "file, not delimited text (UTF-16 without a byte-order mark? save it "
                           "as UTF-8)")
    if buf and np.frombuffer(buf, dtype=np.uint8).max() >= 0x80:
        try:
            buf.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _utf8_error(label, buf, exc.start,
                              "the file is probably Latin-1 or Windows-1252: pass --param "
                              "encoding=latin-1 (or cp1252), or re-encode it as UTF-8") from None
    return buf
