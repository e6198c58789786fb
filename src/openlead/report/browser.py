"""Headless Chromium helpers: a screenshot of a report's first screen and its DOM with console messages.

Chromium runs offline and isolated: a fresh ``--user-data-dir`` per call, no background networking, and every
host name resolves to nothing (``--host-resolver-rules``), so a report that tried to load anything from the
network would log a failed request as a console error.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from openlead.errors import InputError

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\)|:\d+)\]\s*(.*)$")


def find_chromium() -> str | None:
    """The Chromium binary: $OPENLEAD_CHROMIUM, then the Debian paths. None when there is none."""
    env = os.environ.get("OPENLEAD_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for c in CHROMIUM_CANDIDATES:
        if Path(c).exists():
            return c
    return None


def _chromium(extra: list[str], target: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    exe = find_chromium()
    if exe is None:
        raise InputError("headless Chromium is not installed (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="openlead-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *extra, target.resolve().as_uri()]
        env = {**os.environ, "HOME": profile}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@dataclass(frozen=True)
class PageLoad:
    """The DOM after load and every console message Chromium logged (errors included)."""

    dom: str
    console: list[str]
    returncode: int


def load_page(html: str | Path, timeout: float = 60.0) -> PageLoad:
    """Load an HTML file in headless Chromium; return the serialised DOM and the console messages."""
    res = _chromium(["--enable-logging=stderr", "--v=0", "--dump-dom"], Path(html), timeout)
    console = [m.group(1) for line in res.stderr.splitlines() if (m := _CONSOLE.search(line))]
    return PageLoad(dom=res.stdout, console=console, returncode=res.returncode)


def take_screenshot(
    html: str | Path, png: str | Path, width: int = 1280, height: int = 900, timeout: float = 60.0
) -> Path:
    """A PNG of the first screen (``width`` x ``height``) of an HTML file, taken in headless Chromium."""
    out = Path(png).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    res = _chromium([f"--window-size={width},{height}", f"--screenshot={out}"], Path(html), timeout)
    if not out.exists():
        raise InputError(f"Chromium wrote no screenshot (exit {res.returncode}): {res.stderr[-500:]}")
    return out


# -- PNG check (no imaging library needed) ------------------------------------------------------------------


def png_stats(png: str | Path) -> tuple[int, int, int]:
    """(width, height, number of distinct pixel colours) of an 8-bit RGB/RGBA PNG."""
    data = Path(png).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise InputError(f"{png}: not a PNG file")
    pos, idat = 8, b""
    width = height = depth = ctype = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    if depth != 8 or ctype not in (2, 6):
        raise InputError(f"{png}: expected an 8-bit RGB(A) PNG, got depth {depth} colour type {ctype}")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colours: set[bytes] = set()
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        if y % 4 == 0:  # sample every 4th row for the colour count
            colours.update(bytes(line[i : i + bpp]) for i in range(0, stride, bpp * 2))
        prev = line
    return width, height, len(colours)
