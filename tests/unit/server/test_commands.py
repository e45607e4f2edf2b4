"""`infragenius keys` refuses bad input before it touches a database."""

from __future__ import annotations

import pytest

from infragenius.cli import main


def test_keys_need_a_database(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("INFRAGENIUS_POSTGRES_URL", raising=False)
    monkeypatch.setenv("INFRAGENIUS_STACK_MANAGE", "false")
    assert main(["keys", "list"]) == 2
    assert "INFRAGENIUS_POSTGRES_URL" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["--namespace", "Kube_System"], "not namespace names: 'Kube_System'"),
        (["--namespace", "shop", "--tier", "gold"], "unknown tier 'gold'"),
    ],
)
def test_keys_create_refuses_what_it_cannot_store(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], arguments: list[str], complaint: str
) -> None:
    # A URL nothing listens on: the command must refuse before it tries to connect.
    monkeypatch.setenv("INFRAGENIUS_POSTGRES_URL", "postgresql://nobody@127.0.0.1:1/none")
    assert main(["keys", "create", "--owner", "alice", "--scope", "read", *arguments]) == 2
    assert complaint in capsys.readouterr().err


def test_serve_commands_are_registered() -> None:
    from infragenius.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["serve"]).func.__name__ == "run_serve"
    assert parser.parse_args(["mcp", "--stdio"]).func.__name__ == "run_stdio"
    with pytest.raises(SystemExit):
        parser.parse_args(["keys", "create", "--owner", "a", "--scope", "admin", "--namespace", "x"])
