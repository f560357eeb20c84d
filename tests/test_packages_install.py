"""The package page installs only packages from the index, by name (issue 17): a local archive
whose name looks like a package (`evilpkg-0.1.tar.gz`) ran its setup.py through real pip."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from quantstrip.dashboard.packages import NotAnIndexPackage, index_requirement, pip_install

SETUP = """
from pathlib import Path
Path({marker!r}).write_text("setup.py ran")
from setuptools import setup
setup(name="evilpkg", version="0.1", py_modules=[])
"""


def evil_sdist(folder: Path, marker: Path) -> Path:
    """An sdist whose setup.py leaves `marker` behind when pip builds it."""
    archive = folder / "evilpkg-0.1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in {
            "evilpkg-0.1/setup.py": SETUP.format(marker=str(marker)),
            "evilpkg-0.1/PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 0.1\n",
        }.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_a_local_archive_named_like_a_package_is_refused_before_pip_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "PWNED"
    evil_sdist(tmp_path, marker)
    monkeypatch.chdir(tmp_path)  # where the page's kernel would resolve a relative file name
    # Build in this environment (setuptools is installed) and never reach a real index.
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    code, text = pip_install("evilpkg-0.1.tar.gz")
    assert code != 0
    assert text.startswith("refused") and "evilpkg-0.1.tar.gz" in text
    assert not marker.exists(), "pip built the local archive"


@pytest.mark.parametrize(
    "typed",
    [
        "evilpkg-0.1.tar.gz",
        "evilpkg-0.1-py3-none-any.whl",
        "evilpkg.zip",
        "./evilpkg",
        "/tmp/evilpkg",
        "..\\evilpkg",
        "https://example.invalid/evilpkg-0.1.tar.gz",
        "git+https://example.invalid/evilpkg.git",
        "evilpkg @ https://example.invalid/evilpkg.whl",
        "evilpkg @ file:///tmp/evilpkg",
        "file:///tmp/evilpkg",
        "-r requirements.txt",
        "--index-url=http://example.invalid evilpkg",
        "-e .",
        "numpy; rm -rf /",
        "numpy; python_version > '3'",
        "numpy numpy",
        "",
    ],
)
def test_anything_but_an_index_name_is_refused(typed: str) -> None:
    with pytest.raises(NotAnIndexPackage):
        index_requirement(typed)


@pytest.mark.parametrize(
    ("typed", "argument"),
    [
        ("numpy", "numpy"),
        ("numpy==2.1.0", "numpy==2.1.0"),
        ("TA_Lib", "ta-lib"),
        ("requests[socks]>=2", "requests[socks]>=2"),
        ("pandas<3,>=2", "pandas<3,>=2"),
        ("  qs-demo-pkg == 0.1.0 ", "qs-demo-pkg==0.1.0"),
    ],
)
def test_index_names_reach_pip_in_canonical_form(typed: str, argument: str) -> None:
    assert index_requirement(typed) == argument
