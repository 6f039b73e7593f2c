"""Image files checked whole before they are decoded, by every reader (data/bev.py) and by
`verify-data` (data/verify.py) alike.

    problem = file_problem(data, ".jpg")            # None, or why the bytes are not a whole image
    width, height = header_size(data, ".png")       # from the header, without decoding (None: unknown)
    image = decode_file(path, cv2.IMREAD_COLOR, "panorama")     # BGR, or ImageError naming the file
    image = decode(data, ".jpg", cv2.IMREAD_REDUCED_COLOR_4)    # BGR, or the reason it is not one (str)

OpenCV decodes a truncated JPEG without complaint (the missing rows come out grey), so the JPEG
end-of-image marker (FFD9) and the PNG IEND chunk are checked explicitly: the usual failure of
a large download never silently reaches a BEV, a training batch or a localization.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from geodistill.errors import ImageError

JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_SIG, PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}   # start-of-frame markers


def file_problem(data: bytes, suffix: str) -> str | None:
    """None if `data` (a file's bytes, `suffix` its extension) is a whole JPEG / PNG, else why
    not; other formats are left to the decoder."""
    if not data:
        return "empty file"
    if suffix in (".jpg", ".jpeg"):
        if not data.startswith(JPEG_SOI):
            return "not a JPEG (no start-of-image marker)"
        if not data.rstrip(b"\x00").endswith(JPEG_EOI):
            return "truncated JPEG (no end-of-image marker)"
    elif suffix == ".png":
        if not data.startswith(PNG_SIG):
            return "not a PNG (bad signature)"
        if not data.endswith(PNG_IEND):
            return "truncated PNG (no IEND chunk at the end)"
    return None


def header_size(data: bytes, suffix: str) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame or a PNG's IHDR header, None if not found."""
    if suffix == ".png":
        return (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) if len(data) >= 24 else None
    if suffix in (".jpg", ".jpeg"):
        return jpeg_size(data)
    return None


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the JPEG header's start-of-frame marker (the first bytes of the file
    suffice), None if not found."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in JPEG_SOF:
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    return None


def decode(data: bytes, suffix: str, flags: int) -> np.ndarray | str:
    """The image in `data` decoded with OpenCV `flags` (BGR), or why it is not one: file_problem's
    reason, or the decoder's refusal."""
    problem = file_problem(data, suffix)
    if problem is not None:
        return problem
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        return f"cannot be decoded ({str(e).strip().splitlines()[-1]})"
    return "cannot be decoded" if image is None else image


def decode_file(path: str | Path, flags: int, what: str) -> np.ndarray:
    """The image at `path` decoded with OpenCV `flags` (BGR); ImageError naming the file (as
    `what`) when it is missing, truncated or does not decode."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ImageError(f"cannot read {what} {path} (missing)") from None
    image = decode(data, path.suffix.lower(), flags)
    if isinstance(image, str):
        raise ImageError(f"cannot read {what} {path} ({image})")
    return image
