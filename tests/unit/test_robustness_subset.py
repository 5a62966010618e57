"""A fast subset of `bench/robustness.py`: its attacks, on two pictures at their native size.

After every attack that has a target, the id comes back exactly: from the blind read, or, where that misses,
from the known-id test with the true id among two others (what recovery asks once the repository has named
candidates). Negative control: the same attacks on the unmarked pictures find nothing either way. Fixed key,
ids and pictures, so the outcome does not vary between runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.robustness import ATTACKS, EXEMPT, RGB, generated, rgb
from signing import Candidates, SpreadSpectrumWatermark, WatermarkKey

ENGINE = SpreadSpectrumWatermark()
KEY = WatermarkKey("current", b"test watermark key number one....")
PAYLOAD = 0x5A17_C0DE_BEEF
DECOYS = (0x0123_4567_89AB, 0x7E57_0000_0001)
TARGETED = [name for name in ATTACKS if name not in EXEMPT]


def pictures() -> dict[str, RGB]:
    from skimage import data

    (name, noise), *_ = generated(np.random.default_rng(7), 1)
    return {"astronaut": rgb(getattr(data, "astronaut")()), name: noise}  # noqa: B009 (untyped loader)


PICTURES = pictures()


def found(query: RGB, size: tuple[int, int]) -> int | None:
    blind = ENGINE.detect(query, (KEY,))
    if blind.payload_id is not None:
        return blind.payload_id
    candidates = Candidates((DECOYS[0], PAYLOAD, DECOYS[1]), (size,) * 3)
    return ENGINE.detect_known(query, (KEY,), candidates).payload_id


@pytest.mark.parametrize("name", PICTURES)
def test_every_targeted_attack_keeps_the_id(name: str) -> None:
    picture = PICTURES[name]
    marked = ENGINE.embed(picture, PAYLOAD, KEY)
    size = (picture.shape[1], picture.shape[0])
    for attack in TARGETED:
        assert found(np.ascontiguousarray(ATTACKS[attack](marked)), size) == PAYLOAD, attack
        assert found(np.ascontiguousarray(ATTACKS[attack](picture)), size) is None, attack
