"""Names from a file reach report sentences only neutralised: no bidi or control characters, no look-alike
quotation mark that could close Hallmark's quotes. The structured fields keep the raw value."""

from __future__ import annotations

import unicodedata

import pytest

from signing.models import Outcome
from signing.quoting import LOOKALIKE_QUOTES, neutral_text, quoted
from signing.reading import RawReading
from tests.unit.test_report import action, report_of, store

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f"
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
SEPARATORS = "\u2028\u2029\n\r\t\x00\x1b\x7f\x85"
CLOSERS = '"\u201c\u201d\u201e\u201f\u00ab\u00bb\u2039\u203a\u2033\u02ba\u02dd\uff02\u301d\u301e\u301f'


@pytest.mark.parametrize("ch", list(BIDI + INVISIBLE + SEPARATORS), ids=lambda c: f"U+{ord(c):04X}")
def test_control_bidi_and_invisible_characters_are_removed(ch: str) -> None:
    assert neutral_text(f"Acme{ch}Corp") == "AcmeCorp"
    assert ch not in quoted(f"Acme{ch}Corp")


@pytest.mark.parametrize("ch", list(CLOSERS), ids=lambda c: f"U+{ord(c):04X}")
def test_lookalike_quotes_cannot_close_our_quotes(ch: str) -> None:
    text = quoted(f"Acme{ch} is trusted by Hallmark{ch}")
    assert text == "\"Acme' is trusted by Hallmark'\""
    assert text.count('"') == 2


def test_the_closers_listed_are_all_quotation_like() -> None:
    assert set(CLOSERS) <= LOOKALIKE_QUOTES
    # The control: ordinary letters and the apostrophe we substitute pass through unchanged.
    assert neutral_text("O'Brien & Söhne GmbH") == "O'Brien & Söhne GmbH"


def test_unusual_spaces_become_plain_ones_and_runs_collapse() -> None:
    assert neutral_text("Acme\u00a0\u3000\u2003Corp ") == "Acme Corp"


def test_hostile_signer_and_model_names_are_neutral_in_the_summary_and_raw_in_the_fields() -> None:
    org = "Evil\u202e\u2066 Corp\u201d trusted by Hallmark \u201c\u200b"
    model = "gpt\u2028\u2029\u200f-image\u201c"
    hostile = store(
        actions=[
            action(
                "c2pa.created",
                "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                {"name": model, "version": "1\u202e"},
            )
        ],
        signature_info={"alg": "Es256", "issuer": org, "common_name": org},
    )
    report = report_of(RawReading(kind="manifest", state="Valid", store=hostile))
    assert report.outcome is Outcome.VALID_UNTRUSTED
    summary = report.summary
    assert "\"Evil Corp' trusted by Hallmark '\" (as named in its certificate)" in summary
    assert '"gpt-image\'"' in summary
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in summary)
    assert not set(summary) & (LOOKALIKE_QUOTES - {'"'})
    # Raw values stay in the structured fields: the sentence changed, the data did not.
    assert report.signer is not None
    assert report.signer.organization == org
    assert report.ai is not None
    assert report.ai.model_name == model
