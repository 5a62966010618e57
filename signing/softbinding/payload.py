"""The watermark payload: a random identifier plus a binary BCH code (bchlib).

48 data bits + 77 parity bits (BCH over GF(2^7), t = 13, shortened) = 125 coded bits. The spreading codes give
each bit its own independent error, so a binary code that corrects any 13 wrong bits suits the channel far
better than a byte-wise code. The decoder also tries flipping the least reliable bits (Chase decoding), and
accepts a result only if it re-encodes to a codeword within 13 bits of what was read. A uniformly random word
lies within 13 bits of one of the 2^48 codewords with probability exactly 2^48 * V(125, 13) / 2^125 = 1.14e-6
(V the Hamming ball's volume), so `decode` accepts a random word with probability at most
RANDOM_DECODE_BOUND = 2^4 Chase trials * 1.14e-6 = 1.83e-5 (the detector's false-positive bound uses it).
Identifiers are random (`new_payload_id`), never derived from personal data.
"""

from __future__ import annotations

import itertools
import math
import secrets

import bchlib
import numpy as np
import numpy.typing as npt

ID_BITS = 48
_DATA_BYTES = ID_BITS // 8
_BCH = bchlib.BCH(13, m=7)
_PARITY_BITS = int(_BCH.ecc_bits)
CODED_BITS = ID_BITS + _PARITY_BITS
_CHASE_BITS = 4
_BALL: int = sum(math.comb(CODED_BITS, errors) for errors in range(int(_BCH.t) + 1))
RANDOM_DECODE_BOUND: float = 2**_CHASE_BITS * _BALL / 2.0 ** (CODED_BITS - ID_BITS)


def new_payload_id() -> int:
    """A fresh random identifier of `ID_BITS` bits."""
    return secrets.randbits(ID_BITS)


def _codeword(data: bytes) -> npt.NDArray[np.uint8]:
    parity = bytes(_BCH.encode(data))
    return np.unpackbits(np.frombuffer(data + parity, dtype=np.uint8))[:CODED_BITS]


def encode(payload_id: int) -> npt.NDArray[np.uint8]:
    """The coded bits (0/1) for `payload_id`, most significant bit first."""
    if not 0 <= payload_id < 1 << ID_BITS:
        raise ValueError(f"a payload id has {ID_BITS} bits")
    return _codeword(payload_id.to_bytes(_DATA_BYTES, "big"))


WORD_BYTES = -(-CODED_BITS // 8)  # a coded word packed, zero-padded to whole bytes


def pack_word(bits: npt.NDArray[np.uint8]) -> bytes:
    """Coded bits (0/1, CODED_BITS of them) packed most significant first, zero-padded to WORD_BYTES."""
    return np.packbits(bits.astype(np.uint8)).tobytes()


def codeword(payload_id: int) -> bytes:
    """The packed coded word of `payload_id` (what a perfect read of its mark gives)."""
    return pack_word(encode(payload_id))


def _bch_decode(hard: npt.NDArray[np.uint8]) -> int | None:
    padded = np.zeros(8 * (_DATA_BYTES + int(_BCH.ecc_bytes)), dtype=np.uint8)
    padded[:CODED_BITS] = hard
    buffer = np.packbits(padded).tobytes()
    data, parity = bytearray(buffer[:_DATA_BYTES]), bytearray(buffer[_DATA_BYTES:])
    if _BCH.decode(data, parity) < 0:
        return None
    _BCH.correct(data, parity)
    # the C decoder can report success for words it did not bring back to a codeword: check
    if int(np.count_nonzero(_codeword(bytes(data)) != hard)) > _BCH.t:
        return None
    return int.from_bytes(bytes(data), "big")


def decode(soft: npt.NDArray[np.floating]) -> int | None:
    """The payload id from soft bit values (positive means 1), or None when the code does not decode."""
    if soft.shape != (CODED_BITS,):
        raise ValueError(f"expected {CODED_BITS} soft bits")
    hard = (soft > 0).astype(np.uint8)
    weakest = np.argsort(np.abs(soft))[:_CHASE_BITS]
    for count in range(_CHASE_BITS + 1):
        for flips in itertools.combinations(weakest, count):
            trial = hard.copy()
            trial[list(flips)] ^= 1
            found = _bch_decode(trial)
            if found is not None:
                return found
    return None
