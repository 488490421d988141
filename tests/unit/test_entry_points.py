"""The checkout's pyproject.toml against the installed metadata: an entry point the checkout
declares and the install lacks is still found (``registered``), and ``callcenter doctor`` says
the install is stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter import cli, entry_points

PROJECT = '''
[project]
name = "{name}"
[project.scripts]
callcenter = "callcenter.cli:main"
[project.entry-points."callcenter.test_only"]
newer = "callcenter.cli:main"
'''


def _pyproject(tmp_path: Path, name: str = "callcenter") -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(PROJECT.format(name=name))
    return path


def test_what_the_checkout_declares_and_the_install_lacks_is_stale(tmp_path: Path) -> None:
    assert entry_points.stale(_pyproject(tmp_path)) == ["callcenter.test_only:newer"]
    assert entry_points.stale(_pyproject(tmp_path, "another")) == []
    assert entry_points.stale(tmp_path / "absent.toml") == []


def test_doctor_warns_of_stale_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(entry_points, "_PYPROJECT", _pyproject(tmp_path))
    cli._doctor_metadata()
    assert capsys.readouterr().out == (
        "[WARN] installed metadata is stale (lacks callcenter.test_only:newer): run ./dev or "
        "pip install -e .\n")
    assert "newer" in entry_points.registered("callcenter.test_only")   # found all the same
    monkeypatch.setattr(entry_points, "_PYPROJECT", _pyproject(tmp_path, "another"))
    cli._doctor_metadata()
    assert capsys.readouterr().out == ""
