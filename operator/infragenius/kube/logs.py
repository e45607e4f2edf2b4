"""Container log text as evidence: the few lines of a crashed or unready container's output that say why.

Pure: it reads text the gatherer already fetched. Log text is untrusted (anything the application, or
whoever controls its input, printed): it is cleaned here (no terminal escapes, no control characters,
bounded lines) and masked later like every other piece of cluster text before a model sees it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

#: At most this many lines per container, each at most MAX_LINE_CHARS long.
MAX_LINES = 10
MAX_LINE_CHARS = 300
#: Without a single error line, the last few lines still tell the reader what the process did last.
FALLBACK_LINES = 3
#: Of the error lines kept when there are too many: the first few (often the cause), the rest from the end
#: (what the process died of).
HEAD_LINES = 2
#: A line is cut to this before any pattern looks at it: one huge line must not cost more than a few.
SCAN_CHARS = 4 * MAX_LINE_CHARS

# Terminal escapes (CSI colours and cursor moves, OSC titles, two-byte escapes); no nested quantifiers.
_ANSI = re.compile(r"\x1b\[[0-9;:?<=>]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
# Every control character but tab (C0, DEL, C1), and the Unicode line/paragraph separators and bidi overrides.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ERROR = re.compile(
    r"\b(?:ERROR|FATAL|CRITICAL|SEVERE|PANIC)\b|panic:|Exception|exception|Error:|error:"
    r"|\blevel[=:]\s*\"?(?:error|fatal|critical|panic)\b|\"level\"\s*:\s*\"(?:error|fatal|critical|panic)\""
    r"|Traceback \(most recent call last\)|Caused by:|Segmentation fault|Killed\b|out of memory|OutOfMemory",
    re.IGNORECASE,
)
_PY_TRACEBACK = "Traceback (most recent call last):"
_PY_FRAME = re.compile(r"^\s+File \"")
_GO_PANIC = re.compile(r"^(?:panic:|fatal error:)")
_GO_GOROUTINE = re.compile(r"^goroutine \d+ \[")
_JAVA_FRAME = re.compile(r"^\s*at [\w$.<>/]+\(")
_JAVA_MORE = re.compile(r"^\s*\.\.\. \d+ (?:more|common frames omitted)")


@dataclass(frozen=True)
class LogExcerpt:
    """The lines kept from one container's log."""

    lines: tuple[str, ...]
    #: False: no line looked like an error, so ``lines`` are the log's last lines.
    errors_found: bool


def clean_line(line: str, limit: int = MAX_LINE_CHARS) -> str:
    """One line as evidence: no escapes or control characters, tabs as spaces, at most ``limit`` characters."""
    line = _ANSI.sub("", line[:SCAN_CHARS])
    line = _CONTROL.sub("", line.replace("\t", " ")).rstrip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def decode(data: bytes) -> str:
    """Log bytes as text: whatever is not UTF-8 (binary output, a cut multi-byte character) becomes U+FFFD."""
    return data.decode("utf-8", errors="replace")


def error_lines(text: str, max_lines: int = MAX_LINES, max_chars: int = MAX_LINE_CHARS) -> LogExcerpt:
    """The lines of ``text`` that show an error, with the heads and first frames of stack traces.

    Python: ``Traceback (most recent call last):``, its last ``File`` frame and the exception line. Go: the
    ``panic:`` line and the first frame (function and location). Java: the exception line, its first
    ``at`` frame and every ``Caused by:``. Other lines count when they carry an error word or level.
    Repeated lines are kept once. Without any, the last ``FALLBACK_LINES`` non-empty lines.
    """
    raw = [clean_line(line, max_chars) for line in text.splitlines()]
    lines = [line for line in raw if line.strip()]
    kept: list[str] = []
    seen: set[str] = set()

    def keep(line: str) -> None:
        if line not in seen:
            seen.add(line)
            kept.append(line)

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(_PY_TRACEBACK):
            keep(line)
            i = _python_traceback(lines, i + 1, keep)
            continue
        if _GO_PANIC.match(stripped):
            keep(line)
            i = _go_first_frame(lines, i + 1, keep)
            continue
        if _JAVA_FRAME.match(line) or _JAVA_MORE.match(line):
            i += 1  # the frames after the first (kept with its exception line below)
            continue
        if _ERROR.search(line):
            keep(line)
            if i + 1 < len(lines) and _JAVA_FRAME.match(lines[i + 1]):
                keep(lines[i + 1])  # the first frame says where the exception was thrown
        i += 1
    if not kept:
        return LogExcerpt(tuple(lines[-FALLBACK_LINES:]), errors_found=False)
    if len(kept) > max_lines:
        head = min(HEAD_LINES, max_lines)
        kept = kept[:head] + kept[len(kept) - (max_lines - head) :]
    return LogExcerpt(tuple(kept), errors_found=True)


def _python_traceback(lines: list[str], i: int, keep: Callable[[str], None]) -> int:
    """Skip the frames, keep the last ``File`` line and the exception line; the index after them."""
    last_frame = None
    while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
        if _PY_FRAME.match(lines[i]):
            last_frame = lines[i]
        i += 1
    if last_frame is not None:
        keep(last_frame)
    if i < len(lines):
        keep(lines[i])  # "ValueError: ...", the exception that ended the traceback
        i += 1
    return i


def _go_first_frame(lines: list[str], i: int, keep: Callable[[str], None]) -> int:
    """After ``panic:``: keep the first goroutine's first frame, its function and file:line on one line."""
    start = i
    while i < len(lines) and not _GO_GOROUTINE.match(lines[i]):
        if i - start >= 3:  # no goroutine dump follows: read the lines after the panic normally
            return start
        i += 1
    if i + 1 >= len(lines):
        return i + 1
    frame = lines[i + 1].strip()
    location = lines[i + 2] if i + 2 < len(lines) else ""
    if location.startswith(" "):  # the frame's "\t/src/main.go:12 +0x1d" line (tabs are spaces by now)
        frame = f"{frame} at {location.strip()}"
        i += 1
    keep(clean_line(frame))
    return i + 2
