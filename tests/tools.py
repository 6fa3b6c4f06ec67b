"""Helpers for tests that need an external tool (pdflatex, Chromium, PyTorch).

Outside CI a missing tool skips the test with the reason; in CI (CI=true) it is a failure,
because the README's test command installs every tool the tests need.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/test.sh installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package {name} is not installed (scripts/test.sh installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def png_pixels(data: bytes) -> tuple[int, int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (pure Python): width, height, bytes per pixel, unfiltered rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunk = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    width, height, depth, colour, *_ = header
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up = previous[i]
            corner = previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, bpp, rows


def distinct_colours(png: bytes, step: int = 4) -> int:
    """How many different pixel values a sample of the picture holds (1 for a blank picture)."""
    width, _, bpp, rows = png_pixels(png)
    return len({row[x : x + bpp] for row in rows[::step] for x in range(0, width * bpp, bpp * step)})


def dark_pixels(png: bytes, step: int = 4) -> int:
    """Sampled pixels darker than mid-grey: text and lines on a white page."""
    width, _, bpp, rows = png_pixels(png)
    return sum(1 for row in rows[::step] for x in range(0, width * bpp, bpp * step) if sum(row[x : x + 3]) < 384)


def chromium_screenshot(page: Path, work: Path, size: tuple[int, int] = (1200, 1600)) -> bytes:
    """Open ``page`` in real headless Chromium with no network access and return the screenshot's PNG bytes."""
    chromium = require_program("chromium")
    shot = work / "screenshot.png"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={work / 'profile'}",
        f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", page.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return shot.read_bytes()


SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str):
    """Import ``scripts/<name>.py`` as a module, once (registered, so dataclasses inside it work)."""
    module_name = f"symback_script_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def load_example(name: str):
    """Import ``examples/<name>.py`` as a module, once: scripts/readme_figures.py's loader, so the tests and
    the README figures they check share one module (and one set of what it caches)."""
    return load_script("readme_figures").load_example(name)
