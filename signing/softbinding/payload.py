"""The watermark payload: a random identifier plus a Reed-Solomon code over GF(2^8).

48 data bits (6 bytes) + 6 parity bytes = 96 coded bits. The decoder corrects up to 3 wrong bytes, or trades
them for erasures of the least reliable bytes (2 errors + 2 erasures). Identifiers are random
(`new_payload_id`), never derived from personal data.
"""

from __future__ import annotations

import secrets

import numpy as np
import numpy.typing as npt
from reedsolo import ReedSolomonError, RSCodec

ID_BITS = 48
_DATA_BYTES = ID_BITS // 8
_PARITY_BYTES = 6
CODED_BITS = 8 * (_DATA_BYTES + _PARITY_BYTES)
_CODEC = RSCodec(_PARITY_BYTES)
# Erasures beyond two would leave too little redundancy to reject a wrong codeword.
_ERASURE_TRIES = (0, 2)


def new_payload_id() -> int:
    """A fresh random identifier of `ID_BITS` bits."""
    return secrets.randbits(ID_BITS)


def encode(payload_id: int) -> npt.NDArray[np.uint8]:
    """The coded bits (0/1) for `payload_id`, most significant bit first."""
    if not 0 <= payload_id < 1 << ID_BITS:
        raise ValueError(f"a payload id has {ID_BITS} bits")
    coded = bytes(_CODEC.encode(payload_id.to_bytes(_DATA_BYTES, "big")))
    return np.unpackbits(np.frombuffer(coded, dtype=np.uint8))


def decode(soft: npt.NDArray[np.floating]) -> int | None:
    """The payload id from soft bit values (positive means 1), or None when the code does not decode."""
    if soft.shape != (CODED_BITS,):
        raise ValueError(f"expected {CODED_BITS} soft bits")
    hard = np.packbits((soft > 0).astype(np.uint8))
    reliability = np.abs(soft).reshape(-1, 8).min(axis=1)
    for erasures in _ERASURE_TRIES:
        erase = sorted(int(i) for i in np.argsort(reliability)[:erasures])
        try:
            message, _, _ = _CODEC.decode(bytearray(hard.tobytes()), erase_pos=erase or None)
        except ReedSolomonError:
            continue
        return int.from_bytes(bytes(message), "big")
    return None
