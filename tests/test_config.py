"""The README's settings table is rendered from ``Settings``: a setting added, removed or redescribed in
config.py without regenerating the table fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencts.config import TABLE_END, TABLE_START, Settings, main, settings_table

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_table() -> str:
    text = README.read_text()
    assert TABLE_START in text and TABLE_END in text, "the README lost its settings-table markers"
    return text.split(TABLE_START + "\n", 1)[1].split(TABLE_END, 1)[0]


def test_the_readme_table_is_the_generated_one() -> None:
    assert readme_table() == settings_table(), (
        "README.md's settings table is stale: paste the output of `python -m opencts.config --markdown`"
    )


def test_every_setting_is_described_and_listed_once() -> None:
    rows = [line for line in settings_table().splitlines() if line.startswith("| `OPENCTS_")]
    assert len(rows) == len(Settings.model_fields) == len(set(rows))
    assert all(info.description for info in Settings.model_fields.values())


def test_the_table_renders_defaults_and_limits() -> None:
    rows = {line.split(" | ")[0].strip("| `"): line for line in settings_table().splitlines()}
    assert rows["OPENCTS_RETENTION_DAYS"].startswith("| `OPENCTS_RETENTION_DAYS` | `7` | ≥ 1, ≤ 3650 |")
    assert "| unset |" in rows["OPENCTS_DATABASE_URL"]
    assert "| `none`, `starttls`, `tls` |" in rows["OPENCTS_SMTP_SECURITY"]


def test_the_module_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--markdown"])
    assert capsys.readouterr().out == settings_table()
