"""Missing data never passes silently: with ``CI`` set, a test that needs the shared data fails
when it is absent; elsewhere it is skipped and the summary names it (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")

NEEDS_DATA = '''
from conftest import DATA_ROOT, require_data

def test_uses_cxr(cxr_dir):
    pass

def test_uses_gb(gb_dir):
    pass

def test_requires_a_file():
    require_data(DATA_ROOT / "covidqu_ex" / "val" / "images" / "x.png", "one image")

def test_needs_nothing():
    pass
'''


@pytest.fixture
def fake_checkout(pytester, monkeypatch, tmp_path):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_needs_data=NEEDS_DATA)
    monkeypatch.setenv("LUNGSAM_DATA", str(tmp_path / "no-data-here"))
    return pytester


def test_missing_data_fails_in_ci(fake_checkout, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = fake_checkout.runpytest("-p", "no:cacheprovider", "-rfE")
    result.assert_outcomes(passed=1, failed=1, errors=2)  # fixtures fail as errors
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*shared data missing*no-data-here*CI is set*"])


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_data_skips_outside_ci_and_the_summary_says_so(fake_checkout, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    result = fake_checkout.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3)
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*skipped: shared data missing*",
        "3 tests did not run because the data they need is absent*",
        "*1 x shared data missing: *covid_chestxray_gb*images not found*",
    ])


def test_present_data_runs(pytester, monkeypatch, tmp_path):
    root = tmp_path / "data"
    for sub in ("covidqu_ex/val/images", "covid_chestxray_gb/images"):
        (root / sub).mkdir(parents=True)
    (root / "covidqu_ex/val/images/x.png").write_bytes(b"")
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(test_needs_data=NEEDS_DATA)
    monkeypatch.setenv("LUNGSAM_DATA", str(root))
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    assert "shared data missing" not in result.stdout.str()
