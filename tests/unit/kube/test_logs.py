"""Error lines from container logs: stack-trace heads, error words, bounds, hostile bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from infragenius.kube.logs import FALLBACK_LINES, MAX_LINE_CHARS, MAX_LINES, clean_line, decode, error_lines

PYTHON = """\
INFO starting worker
INFO connecting to db
Traceback (most recent call last):
  File "/app/main.py", line 40, in <module>
    main()
  File "/app/main.py", line 12, in main
    connect(os.environ["DB_URL"])
  File "/app/db.py", line 7, in connect
    raise ConnectionError("db:5432 refused")
ConnectionError: db:5432 refused
"""

GO = """\
listening on :8080
panic: runtime error: index out of range [5] with length 3

goroutine 1 [running]:
main.handler(...)
\t/src/app/main.go:27 +0x1d
main.main()
\t/src/app/main.go:12 +0x45
exit status 2
"""

JAVA = """\
12:00:01.000 [main] INFO  com.shop.App - Starting
Exception in thread "main" java.lang.IllegalStateException: cannot start
\tat com.shop.App.start(App.java:42)
\tat com.shop.App.main(App.java:10)
Caused by: java.io.FileNotFoundException: /etc/shop/config.yaml (No such file or directory)
\tat java.base/java.io.FileInputStream.open0(Native Method)
\tat java.base/java.io.FileInputStream.open(FileInputStream.java:216)
\t... 2 more
"""


def test_python_traceback_keeps_head_last_frame_and_exception() -> None:
    excerpt = error_lines(PYTHON)
    assert excerpt.errors_found
    assert excerpt.lines == (
        "Traceback (most recent call last):",
        '  File "/app/db.py", line 7, in connect',
        "ConnectionError: db:5432 refused",
    )


def test_go_panic_keeps_the_panic_and_its_first_frame() -> None:
    excerpt = error_lines(GO)
    assert excerpt.lines == (
        "panic: runtime error: index out of range [5] with length 3",
        "main.handler(...) at /src/app/main.go:27 +0x1d",
    )


def test_java_keeps_exception_first_frame_and_causes() -> None:
    excerpt = error_lines(JAVA)
    assert excerpt.lines == (
        'Exception in thread "main" java.lang.IllegalStateException: cannot start',
        " at com.shop.App.start(App.java:42)",
        "Caused by: java.io.FileNotFoundException: /etc/shop/config.yaml (No such file or directory)",
        " at java.base/java.io.FileInputStream.open0(Native Method)",
    )


def test_plain_error_lines_and_levels_are_kept_once_in_order() -> None:
    log = "\n".join(
        [
            "2025-01-15T12:00:00Z INFO ready",
            "2025-01-15T12:00:01Z ERROR cannot reach payments: timeout",
            'level=error msg="retry budget exhausted"',
            '{"level":"fatal","msg":"giving up"}',
            "2025-01-15T12:00:01Z ERROR cannot reach payments: timeout",
            "FATAL: password authentication failed for user app",
            "debug: 0 errors so far",
        ]
    )
    assert error_lines(log).lines == (
        "2025-01-15T12:00:01Z ERROR cannot reach payments: timeout",
        'level=error msg="retry budget exhausted"',
        '{"level":"fatal","msg":"giving up"}',
        "FATAL: password authentication failed for user app",
    )


def test_many_error_lines_keep_the_first_and_the_last() -> None:
    log = "\n".join(f"ERROR attempt {n} failed" for n in range(1, 51))
    lines = error_lines(log).lines
    assert len(lines) == MAX_LINES
    assert lines[:2] == ("ERROR attempt 1 failed", "ERROR attempt 2 failed")
    assert lines[-1] == "ERROR attempt 50 failed"
    assert lines[2] == f"ERROR attempt {50 - MAX_LINES + 3} failed"


def test_a_huge_line_is_cut() -> None:
    line = "ERROR " + "x" * 1_000_000
    (kept,) = error_lines(line).lines
    assert len(kept) == MAX_LINE_CHARS and kept.startswith("ERROR xxx") and kept.endswith("…")


def test_binary_garbage_and_invalid_utf8_become_clean_text() -> None:
    data = b"\x00\x01\xff\xfe\x80garbage\x1b[31m\r\nERROR bad \xc3\x28 byte\x07\x00\n\xf0\x9f\x9a"
    text = decode(data)
    excerpt = error_lines(text)
    assert excerpt.lines == ("ERROR bad \ufffd( byte",)
    for line in excerpt.lines:
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line), repr(line)


def test_ansi_colours_are_removed() -> None:
    line = "\x1b[1;31mERROR\x1b[0m \x1b]0;title\x07database \x1b[4mdown\x1b[24m"
    assert error_lines(line).lines == ("ERROR database down",)
    assert clean_line("\x1b[38;5;196mred\x1b[m") == "red"


def test_bidi_overrides_and_line_separators_are_dropped() -> None:
    assert clean_line("ERROR \u202eevil\u202c name\u2028x") == "ERROR evil namex"


def test_a_log_without_errors_falls_back_to_its_last_lines() -> None:
    log = "\n".join(f"INFO step {n}" for n in range(1, 21)) + "\n\n   \n"
    excerpt = error_lines(log)
    assert not excerpt.errors_found
    assert excerpt.lines == tuple(f"INFO step {n}" for n in range(21 - FALLBACK_LINES, 21))


def test_an_empty_log_has_no_lines() -> None:
    assert error_lines("") == error_lines("\n\n")
    assert error_lines("").lines == ()
    assert not error_lines("").errors_found


def test_a_panic_line_without_a_goroutine_dump_does_not_swallow_what_follows() -> None:
    log = "panic: config missing\nINFO shutting down\nINFO bye\nINFO gone\nERROR exit 2"
    assert error_lines(log).lines == ("panic: config missing", "ERROR exit 2")


def test_a_traceback_cut_by_the_tail_keeps_what_is_there() -> None:
    log = "  File \"/app/x.py\", line 3, in f\n    g()\nKeyError: 'DB_URL'"
    assert error_lines(log).lines == ("KeyError: 'DB_URL'",)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=400), st.sampled_from(["ERROR x", "panic: y", "goroutine 1 [running]:"]))))
def test_any_text_gives_bounded_clean_lines(parts: list[str]) -> None:
    excerpt = error_lines("\n".join(parts))
    assert len(excerpt.lines) <= MAX_LINES
    for line in excerpt.lines:
        assert 0 < len(line) <= MAX_LINE_CHARS and line.strip()
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029\u202e" for c in line), repr(line)
