"""vocabulary.expand_source_type: short codes and full IPTC URIs in, full URI or None out."""

from __future__ import annotations

import pytest

from signing.vocabulary import expand_source_type

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("trainedAlgorithmicMedia", IPTC + "trainedAlgorithmicMedia"),
        ("digitalCapture", IPTC + "digitalCapture"),
        (IPTC + "compositeWithTrainedAlgorithmicMedia", IPTC + "compositeWithTrainedAlgorithmicMedia"),
        ("  trainedAlgorithmicMedia\n", IPTC + "trainedAlgorithmicMedia"),
        (f" {IPTC}screenCapture ", IPTC + "screenCapture"),
    ],
)
def test_known(value: str, expected: str) -> None:
    assert expand_source_type(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "aiGenerated",
        "trainedalgorithmicmedia",  # codes are case-sensitive
        "trained AlgorithmicMedia",
        IPTC,
        IPTC + "unknownTerm",
        "https://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
        "http://example.com/trainedAlgorithmicMedia",
    ],
)
def test_unknown(value: str) -> None:
    assert expand_source_type(value) is None
