"""README.md's configuration table is generated from the settings model and must stay in sync with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from infragenius.settings import Settings
from infragenius_devtools import docsgen

ROOT = Path(__file__).resolve().parents[2]


def test_readme_table_matches_the_settings_model() -> None:
    readme = (ROOT / "README.md").read_text()
    assert docsgen.START in readme and docsgen.END in readme, "README.md lost its settings-table markers"
    assert docsgen.current_table(readme) == docsgen.render_table(Settings), (
        "README.md's configuration table is out of date with infragenius.settings.Settings: run `make docs`"
    )


class Tiny(BaseSettings):
    """A settings model with one field of each kind the generator has to handle."""

    model_config = SettingsConfigDict(env_prefix="TINY_")

    home: str | None = Field(
        default=None, validation_alias=AliasChoices("TINY_HOME", "HOME"), description="Where | to look."
    )
    workers: int = Field(default=4, ge=1, le=64, description="Parallel workers.")
    ratio: float = 0.5
    token: SecretStr | None = None
    password: SecretStr = SecretStr("hunter2")
    verbose: bool = False
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=lambda: {"team": "sre"})
    name: str = Field(max_length=8)


def test_generator_on_a_tiny_model() -> None:
    lines = docsgen.render_table(Tiny).splitlines()
    assert lines[0] == "| Environment variable | Type | Default | Description |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2:] == [
        r"| `TINY_HOME`, `HOME` | str | `unset` | Where \| to look. |",
        "| `TINY_WORKERS` | int (≥ 1, ≤ 64) | `4` | Parallel workers. |",
        "| `TINY_RATIO` | float | `0.5` |  |",
        "| `TINY_TOKEN` | secret | `unset` |  |",
        "| `TINY_PASSWORD` | secret | `secret` |  |",  # the value never reaches the README
        "| `TINY_VERBOSE` | bool | `false` |  |",
        "| `TINY_TAGS` | JSON list of str | `[]` |  |",
        '| `TINY_LABELS` | JSON object of str | `{"team":"sre"}` |  |',
        "| `TINY_NAME` | str (length ≤ 8) | `required` |  |",
    ]
    assert "hunter2" not in docsgen.render_table(Tiny)


def test_update_replaces_only_the_table_and_check_reports_staleness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{docsgen.START}\n| old |\n{docsgen.END}\n\n## Next\n")
    assert docsgen.main(["--check", "--readme", str(readme)]) == 1
    assert "run `make docs`" in capsys.readouterr().err

    assert docsgen.main(["--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n" + docsgen.START + "\n| Environment variable |")
    assert text.endswith(docsgen.END + "\n\n## Next\n")
    assert "| old |" not in text and "`INFRAGENIUS_KUBECONFIG`, `KUBECONFIG`" in text
    assert docsgen.main(["--check", "--readme", str(readme)]) == 0
    # Regenerating an up-to-date README changes nothing.
    assert docsgen.main(["--readme", str(readme)]) == 0 and readme.read_text() == text


def test_missing_markers_are_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert docsgen.main(["--readme", str(readme)]) == 2
    assert "settings-table:start" in capsys.readouterr().err
    assert readme.read_text() == "# no markers\n"
