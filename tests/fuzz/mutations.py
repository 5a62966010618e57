"""Structure-aware, seeded mutations of signed media: the hostile-input corpus of issue 8.

Each format is parsed into its units (JPEG segments, PNG chunks, ISO BMFF boxes as a tree, RIFF chunks, PDF
objects) and mutated at that level: a unit truncated, duplicated, swapped, removed, retyped, or its length
field set off by one, to zero or to a huge value. The C2PA manifest store (JUMBF, itself a tree of boxes) is
mutated the same way: bytes flipped inside its payloads, a hard-binding hash changed, the signature box
removed or zeroed, a label changed, superboxes nested deeply; then it is put back into its container with the
container's lengths (and PNG CRCs) fixed, so the container still parses and the engine reaches the manifest.
Storms (many tiny boxes, chunks or APP segments) and deep nesting are generated around the signed files.

Every mutant is a pure function of (the signed inputs, the seed, its index): the same seed gives the same
corpus, byte for byte. Used by `tests/fuzz/test_mutations.py` (fast tier) and `bench/mutations.py`
(long tier).
"""

from __future__ import annotations

import random
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

FORMATS = ("jpeg", "png", "mp4", "wav", "pdf")
HUGE32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Mutant:
    name: str  # "<format>/<operator>#<index>": enough to regenerate it
    data: bytes


def _flip(rng: random.Random, data: bytes, count: int = 1) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(count):
        i = rng.randrange(len(out))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def _bad_length(rng: random.Random, real: int, huge: int = HUGE32) -> int:
    return rng.choice(
        [0, 1, 7, 8, max(real - 1, 0), real + 1, real * 2 + 3, huge, huge - 1, rng.randrange(huge)]
    )


# --- ISO BMFF boxes (MP4) and JUMBF boxes share one syntax -------------------------------------------------

BMFF_CONTAINERS = frozenset(
    {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"udta", b"mvex", b"moof", b"traf"}
)
JUMBF_CONTAINERS = frozenset({b"jumb"})


@dataclass
class Box:
    type: bytes
    payload: bytes = b""  # a leaf's bytes after the header
    children: list[Box] | None = None  # a container's boxes
    size_override: int | None = None
    raw: bytes | None = None  # the whole box, already serialised (deep nesting, built without recursion)

    def to_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        body = self.payload if self.children is None else b"".join(c.to_bytes() for c in self.children)
        size = 8 + len(body) if self.size_override is None else self.size_override
        if size > HUGE32:
            return struct.pack(">I4sQ", 1, self.type, size + 8) + body
        return struct.pack(">I4s", size, self.type) + body


def parse_boxes(data: bytes, containers: frozenset[bytes]) -> list[Box]:
    boxes: list[Box] = []
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise ValueError(f"box {kind!r} at {pos} has a bad size {size}")
        body = data[pos + header : pos + size]
        if kind in containers:
            boxes.append(Box(kind, children=parse_boxes(body, containers)))
        else:
            boxes.append(Box(kind, payload=body))
        pos += size
    if pos != len(data):
        raise ValueError(f"{len(data) - pos} trailing bytes after the boxes")
    return boxes


def _all_slots(boxes: list[Box]) -> list[tuple[list[Box], int]]:
    """Every (sibling list, index) pair of the tree, depth first."""
    slots: list[tuple[list[Box], int]] = []
    for i, box in enumerate(boxes):
        slots.append((boxes, i))
        if box.children is not None:
            slots.extend(_all_slots(box.children))
    return slots


def mutate_tree(rng: random.Random, boxes: list[Box], op: str, known_types: list[bytes]) -> None:
    """Apply one structural operator to a random box of the tree, in place."""
    siblings, i = rng.choice(_all_slots(boxes))
    box = siblings[i]
    if op == "delete":
        del siblings[i]
    elif op == "duplicate":
        siblings.insert(i, _clone(box))
    elif op == "swap":
        j = rng.randrange(len(siblings))
        siblings[i], siblings[j] = siblings[j], siblings[i]
    elif op == "size":
        siblings[i].size_override = _bad_length(rng, len(box.to_bytes()))
    elif op == "retype":
        box.type = rng.choice([*known_types, rng.randbytes(4), b"\x00\x00\x00\x00"])
    elif op == "flip":
        leaves = [b for _, b in _leaves(boxes)]
        leaf = rng.choice(leaves) if leaves else box
        leaf.payload = _flip(rng, leaf.payload, rng.choice([1, 1, 2, 8]))
    elif op == "truncate-payload":
        leaves = [b for _, b in _leaves(boxes)]
        leaf = rng.choice(leaves) if leaves else box
        leaf.payload = leaf.payload[: rng.randrange(len(leaf.payload) + 1)]
    elif op == "zero-payload":
        leaves = [b for _, b in _leaves(boxes)]
        leaf = rng.choice(leaves) if leaves else box
        leaf.payload = bytes(len(leaf.payload))
    elif op == "insert-junk":
        siblings.insert(
            i, Box(rng.choice([*known_types, rng.randbytes(4)]), payload=rng.randbytes(rng.randrange(0, 64)))
        )
    else:
        raise ValueError(op)


def _leaves(boxes: list[Box]) -> list[tuple[list[Box], Box]]:
    out: list[tuple[list[Box], Box]] = []
    for box in boxes:
        if box.children is None:
            out.append((boxes, box))
        else:
            out.extend(_leaves(box.children))
    return out


def _clone(box: Box) -> Box:
    children = None if box.children is None else [_clone(c) for c in box.children]
    return Box(box.type, box.payload, children, box.size_override, box.raw)


TREE_OPS = (
    "delete", "duplicate", "swap", "size", "retype", "flip",
    "truncate-payload", "zero-payload", "insert-junk",
)  # fmt: skip


# --- the C2PA manifest store (JUMBF) ------------------------------------------------------------------------

JUMBF_TYPES = [b"jumb", b"jumd", b"cbor", b"json", b"bidb", b"uuid", b"c2pa", b"c2cl", b"c2cs", b"c2as"]
CBOR_HASH = re.compile(rb"\x64hash\x58\x20", re.DOTALL)  # CBOR: text "hash" then a 32-byte byte string


def find_store(data: bytes) -> tuple[int, int]:
    """(start, end) of the C2PA manifest store: the first JUMBF superbox labelled c2pa."""
    idx = data.find(b"jumb\x00\x00\x00")
    while idx >= 4:
        if data[idx + 8 : idx + 12] == b"jumd" and data[idx + 12 : idx + 16] == b"c2pa":
            (size,) = struct.unpack_from(">I", data, idx - 4)
            return idx - 4, idx - 4 + size
        idx = data.find(b"jumb\x00\x00\x00", idx + 1)
    raise ValueError("no C2PA manifest store found")


def _label(box: Box) -> bytes:
    """The label of a JUMBF superbox (from its description box), or b''."""
    if box.children and box.children[0].type == b"jumd":
        desc = box.children[0].payload
        if len(desc) > 17:
            return desc[17:].split(b"\x00", 1)[0]
    return b""


def _superboxes(boxes: list[Box]) -> list[tuple[list[Box], int]]:
    return [(s, i) for s, i in _all_slots(boxes) if s[i].children is not None]


def nest_jumbf(depth: int) -> Box:
    """A chain of `depth` JUMBF superboxes, each inside the last (description box + one child)."""
    inner = Box(b"jumb", children=[_jumd(b"leaf"), Box(b"json", payload=b"{}")]).to_bytes()
    for level in range(depth):
        inner = Box(b"jumb", children=[_jumd(b"n%d" % level), Box(b"", raw=inner)]).to_bytes()
    return Box(b"jumb", raw=inner)


def _jumd(label: bytes) -> Box:
    # UUID of a generic JSON content type, toggles 0x03 (requestable + label present), the label.
    return Box(b"jumd", payload=bytes.fromhex("6a736f6e00110010800000aa00389b71") + b"\x03" + label + b"\x00")


JUMBF_OPS = (*TREE_OPS, "hash", "remove-signature", "zero-signature", "relabel", "nest", "truncate-store")


def mutate_store(rng: random.Random, store: bytes, op: str) -> bytes:
    """One mutation of the manifest store's bytes (returned whole; the container is fixed by the caller)."""
    if op == "hash":
        hits = [m.end() for m in CBOR_HASH.finditer(store)]
        if not hits:
            return _flip(rng, store)
        at = rng.choice(hits) + rng.randrange(32)
        return store[:at] + bytes([store[at] ^ rng.randrange(1, 256)]) + store[at + 1 :]
    if op == "truncate-store":
        return store[: rng.randrange(len(store))]
    boxes = parse_boxes(store, JUMBF_CONTAINERS)
    if op in TREE_OPS:
        mutate_tree(rng, boxes, op, JUMBF_TYPES)
    elif op in ("remove-signature", "zero-signature"):
        sigs = [(s, i) for s, i in _superboxes(boxes) if _label(s[i]) == b"c2pa.signature"]
        siblings, i = rng.choice(sigs)
        if op == "remove-signature":
            del siblings[i]
        else:
            for child in siblings[i].children or []:
                if child.type != b"jumd":
                    child.payload = bytes(len(child.payload))
    elif op == "relabel":
        siblings, i = rng.choice(_superboxes(boxes))
        desc = (siblings[i].children or [Box(b"jumd")])[0]
        desc.payload = (
            desc.payload[:17] + rng.choice([b"c2pa.signature", b"c2pa.claim", b"", b"\xff" * 9]) + b"\x00"
        )
    elif op == "nest":
        siblings, i = rng.choice(_superboxes(boxes))
        children = siblings[i].children
        assert children is not None
        children.append(nest_jumbf(rng.choice([16, 64, 256, 1000])))
    else:
        raise ValueError(op)
    return b"".join(b.to_bytes() for b in boxes)


# --- containers ---------------------------------------------------------------------------------------------


@dataclass
class Jpeg:
    """SOI, the marker segments up to and including SOS, then the entropy-coded rest (with EOI)."""

    segments: list[list[object]] = field(default_factory=list)  # [marker, payload, length override or None]
    rest: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> Jpeg:
        if data[:2] != b"\xff\xd8":
            raise ValueError("not a JPEG")
        jpeg, pos = cls(), 2
        while pos + 4 <= len(data):
            marker = data[pos + 1]
            (length,) = struct.unpack_from(">H", data, pos + 2)
            jpeg.segments.append([marker, data[pos + 4 : pos + 2 + length], None])
            pos += 2 + length
            if marker == 0xDA:
                break
        jpeg.rest = data[pos:]
        return jpeg

    def to_bytes(self) -> bytes:
        out = bytearray(b"\xff\xd8")
        for marker, payload, override in self.segments:
            assert isinstance(marker, int)
            assert isinstance(payload, bytes)
            length = len(payload) + 2 if override is None else int(str(override))
            out += bytes([0xFF, marker]) + struct.pack(">H", length & 0xFFFF) + payload
        return bytes(out + self.rest)


@dataclass
class Png:
    chunks: list[list[object]] = field(default_factory=list)  # [type, data, length override, crc override]

    @classmethod
    def parse(cls, data: bytes) -> Png:
        png, pos = cls(), 8
        while pos + 12 <= len(data):
            length, kind = struct.unpack_from(">I4s", data, pos)
            png.chunks.append([kind, data[pos + 8 : pos + 8 + length], None, None])
            pos += 12 + length
        return png

    def to_bytes(self) -> bytes:
        out = bytearray(b"\x89PNG\r\n\x1a\n")
        for kind, data, length, crc in self.chunks:
            assert isinstance(kind, bytes)
            assert isinstance(data, bytes)
            out += struct.pack(">I", len(data) if length is None else length) + kind + data
            out += struct.pack(">I", zlib.crc32(kind + data) if crc is None else crc)
        return bytes(out)


@dataclass
class Riff:
    form: bytes = b"WAVE"
    chunks: list[list[object]] = field(default_factory=list)  # [id, data, size override]
    riff_size_override: int | None = None

    @classmethod
    def parse(cls, data: bytes) -> Riff:
        riff, pos = cls(form=data[8:12]), 12
        while pos + 8 <= len(data):
            kind, size = struct.unpack_from("<4sI", data, pos)
            riff.chunks.append([kind, data[pos + 8 : pos + 8 + size], None])
            pos += 8 + size + (size & 1)
        return riff

    def to_bytes(self) -> bytes:
        body = bytearray(self.form)
        for kind, data, override in self.chunks:
            assert isinstance(kind, bytes)
            assert isinstance(data, bytes)
            size = len(data) if override is None else int(str(override)) & HUGE32
            body += kind + struct.pack("<I", size) + data
            if len(data) & 1:
                body += b"\x00"
        size = len(body) if self.riff_size_override is None else self.riff_size_override
        return b"RIFF" + struct.pack("<I", size & HUGE32) + bytes(body)


def _replace_store(data: bytes, new_store: bytes, fmt: str) -> bytes:
    """Put a mutated manifest store back where the old one was, fixing the enclosing unit's length."""
    start, end = find_store(data)
    old = data[start:end]
    if fmt == "jpeg":
        jpeg = Jpeg.parse(data)
        for seg in jpeg.segments:
            payload = seg[1]
            assert isinstance(payload, bytes)
            if old in payload and len(payload) - len(old) + len(new_store) <= 0xFFFD:
                seg[1] = payload.replace(old, new_store)
                return jpeg.to_bytes()
            if old in payload:  # too long for one segment: keep the first 0xFFFD bytes
                seg[1] = payload.replace(old, new_store)[:0xFFFD]
                return jpeg.to_bytes()
    elif fmt == "png":
        png = Png.parse(data)
        for chunk in png.chunks:
            if chunk[1] == old:
                chunk[1] = new_store
                return png.to_bytes()
    elif fmt == "wav":
        riff = Riff.parse(data)
        for chunk in riff.chunks:
            if chunk[1] == old:
                chunk[1] = new_store
                return riff.to_bytes()
    elif fmt == "mp4":
        boxes = parse_boxes(data, BMFF_CONTAINERS)
        for box in boxes:
            if box.type == b"uuid" and old in box.payload:
                box.payload = box.payload.replace(old, new_store)
                return b"".join(b.to_bytes() for b in boxes)
    # PDF (and anything not found above): the bytes in place; a PDF's /Length and offsets go stale.
    return data[:start] + new_store + data[end:]


# --- container-level operators ------------------------------------------------------------------------------

JPEG_MARKERS = [0xE0, 0xE1, 0xEB, 0xED, 0xEE, 0xFE, 0xDB, 0xC0, 0xC4, 0xDA, 0xDD, 0xD9, 0xD8, 0x01]
PNG_TYPES = [b"IHDR", b"IDAT", b"IEND", b"caBX", b"iTXt", b"tEXt", b"zTXt", b"PLTE", b"eXIf", b"zzZz"]
RIFF_IDS = [b"fmt ", b"data", b"C2PA", b"LIST", b"id3 ", b"RIFF", b"junk"]
MP4_TYPES = [b"ftyp", b"moov", b"mdat", b"uuid", b"free", b"trak", b"meta", b"udta", b"stco", b"co64"]


def _unit_op(rng: random.Random, units: list[list[object]], op: str, make_junk: Callable[[], list[object]],
             length_slot: int, huge: int) -> None:  # fmt: skip
    """An operator on a flat list of units ([kind, payload, length override, ...])."""
    i = rng.randrange(len(units))
    unit = units[i]
    payload = unit[1]
    assert isinstance(payload, bytes)
    if op == "delete" and len(units) > 1:
        del units[i]
    elif op == "duplicate":
        units.insert(i, list(unit))
    elif op == "swap":
        j = rng.randrange(len(units))
        units[i], units[j] = units[j], units[i]
    elif op == "size":
        unit[length_slot] = _bad_length(rng, len(payload), huge)
    elif op == "retype":
        unit[0] = make_junk()[0]
    elif op in ("flip", "truncate-payload", "zero-payload"):
        if op == "flip":
            unit[1] = _flip(rng, payload, rng.choice([1, 2, 8]))
        elif op == "truncate-payload":
            unit[1] = payload[: rng.randrange(len(payload) + 1)]
        else:
            unit[1] = bytes(len(payload))
    else:  # insert-junk (and delete of the only unit)
        units.insert(i, make_junk())


def mutate_container(rng: random.Random, data: bytes, fmt: str, op: str) -> bytes:
    if fmt == "jpeg":
        jpeg = Jpeg.parse(data)

        def junk_seg() -> list[object]:
            return [rng.choice(JPEG_MARKERS), rng.randbytes(rng.randrange(0, 40)), None]

        _unit_op(rng, jpeg.segments, op, junk_seg, 2, 0xFFFF)
        return jpeg.to_bytes()
    if fmt == "png":
        png = Png.parse(data)

        def junk_chunk() -> list[object]:
            return [
                rng.choice([*PNG_TYPES, rng.randbytes(4)]),
                rng.randbytes(rng.randrange(0, 40)),
                None,
                None,
            ]

        if op == "bad-crc":
            rng.choice(png.chunks)[3] = rng.randrange(HUGE32)
        else:
            _unit_op(rng, png.chunks, op, junk_chunk, 2, HUGE32)
        return png.to_bytes()
    if fmt == "wav":
        riff = Riff.parse(data)

        def junk_riff() -> list[object]:
            return [rng.choice([*RIFF_IDS, rng.randbytes(4)]), rng.randbytes(rng.randrange(0, 40)), None]

        if op == "riff-size":
            riff.riff_size_override = _bad_length(rng, len(data) - 8)
        else:
            _unit_op(rng, riff.chunks, op, junk_riff, 2, HUGE32)
        return riff.to_bytes()
    if fmt == "mp4":
        boxes = parse_boxes(data, BMFF_CONTAINERS)
        mutate_tree(rng, boxes, op if op in TREE_OPS else "flip", MP4_TYPES)
        return b"".join(b.to_bytes() for b in boxes)
    if fmt == "pdf":
        return mutate_pdf(rng, data, op)
    raise ValueError(fmt)


_PDF_OBJ = re.compile(rb"\d+ \d+ obj\b.*?endobj\s*", re.DOTALL)
_PDF_NUMBER = re.compile(rb"(/Length|startxref\s*|/Size|/Root|/AF|/EF|/F|/Count)(\s*)(\d+)")


def mutate_pdf(rng: random.Random, data: bytes, op: str) -> bytes:
    spans = [m.span() for m in _PDF_OBJ.finditer(data)]
    a, b = rng.choice(spans)
    obj = data[a:b]
    if op == "delete":
        return data[:a] + data[b:]
    if op == "duplicate":
        return data[:b] + obj + data[b:]
    if op == "swap":
        c, d = rng.choice(spans)
        if (c, d) == (a, b):
            return data[:a] + data[b:]
        (a, b), (c, d) = sorted([(a, b), (c, d)])
        return data[:a] + data[c:d] + data[b:c] + data[a:b] + data[d:]
    if op in ("size", "retype"):
        numbers = list(_PDF_NUMBER.finditer(data))
        m = rng.choice(numbers)
        value = rng.choice([b"0", b"-1", b"1", b"99999999999999999999", str(int(m.group(3)) + 1).encode()])
        return data[: m.start(3)] + value + data[m.end(3) :]
    if op == "flip":
        return data[:a] + _flip(rng, obj, rng.choice([1, 2, 8])) + data[b:]
    if op == "truncate-payload":
        return data[: a + rng.randrange(len(obj) + 1)] + data[b:]
    if op == "zero-payload":
        return data[:a] + bytes(len(obj)) + data[b:]
    # insert-junk: an object that refers to itself and to objects that do not exist
    junk = b"%d 0 obj\n<< /Type /EmbeddedFile /Length 99999 /Self %d 0 R /X 424242 0 R >>\nendobj\n" % (
        rng.randrange(1, 50),
        rng.randrange(1, 50),
    )
    return data[:a] + junk + data[a:]


CONTAINER_OPS = (*TREE_OPS, "bad-crc", "riff-size")
GENERIC_OPS = ("truncate", "append-junk", "random-flips", "splice-other")


def mutate_generic(rng: random.Random, data: bytes, op: str, other: bytes) -> bytes:
    if op == "truncate":
        return data[: rng.randrange(len(data))]
    if op == "append-junk":
        return data + rng.randbytes(rng.randrange(1, 4096))
    if op == "random-flips":
        return _flip(rng, data, rng.randrange(1, 32))
    # splice-other: the head of this file with the tail of another signed file
    cut = rng.randrange(len(data))
    return data[:cut] + other[rng.randrange(len(other)) :]


# --- storms and nesting -------------------------------------------------------------------------------------


def bmff_storm(signed_mp4: bytes, count: int, kind: bytes = b"free") -> bytes:
    """The signed MP4 with `count` empty 8-byte boxes after its ftyp."""
    boxes = parse_boxes(signed_mp4, BMFF_CONTAINERS)
    return (
        boxes[0].to_bytes() + struct.pack(">I4s", 8, kind) * count + b"".join(b.to_bytes() for b in boxes[1:])
    )


def bmff_nesting(signed_mp4: bytes, depth: int) -> bytes:
    """The signed MP4 with a `udta` box nested `depth` deep inside its moov."""
    boxes = parse_boxes(signed_mp4, BMFF_CONTAINERS)
    inner = Box(b"free").to_bytes()
    for _ in range(depth):
        inner = Box(b"udta", children=[Box(b"", raw=inner)]).to_bytes()
    for box in boxes:
        if box.type == b"moov" and box.children is not None:
            box.children.append(Box(b"udta", raw=inner))
    return b"".join(b.to_bytes() for b in boxes)


def png_storm(signed_png: bytes, count: int) -> bytes:
    """The signed PNG with `count` empty ancillary chunks before its first IDAT."""
    png = Png.parse(signed_png)
    at = next(i for i, c in enumerate(png.chunks) if c[0] == b"IDAT")
    png.chunks[at:at] = [[b"zzZz", b"", None, None] for _ in range(count)]
    return png.to_bytes()


def jpeg_storm(signed_jpeg: bytes, count: int, *, jumbf_fragments: bool = False) -> bytes:
    """The signed JPEG with `count` small APP segments after SOI (APP11 JUMBF continuations, when asked)."""
    jpeg = Jpeg.parse(signed_jpeg)
    extra: list[list[object]]
    if jumbf_fragments:  # continuation segments of a C2PA box that never ends
        extra = [
            [0xEB, b"JP\x00\x01" + struct.pack(">I", n + 2) + b"\x00\x00\x00\x10jumb", None]
            for n in range(count)
        ]
    else:
        extra = [[0xE0 + (n % 16), b"x" * (n % 7), None] for n in range(count)]
    jpeg.segments[0:0] = extra
    return jpeg.to_bytes()


def riff_storm(signed_wav: bytes, count: int) -> bytes:
    riff = Riff.parse(signed_wav)
    riff.chunks[1:1] = [[b"junk", b"", None] for _ in range(count)]
    return riff.to_bytes()


def jumbf_nesting(signed: bytes, fmt: str, depth: int) -> bytes:
    """The signed file with a chain of `depth` nested JUMBF superboxes inside its manifest store."""
    start, end = find_store(signed)
    boxes = parse_boxes(signed[start:end], JUMBF_CONTAINERS)
    children = boxes[0].children
    assert children is not None
    children.append(nest_jumbf(depth))
    return _replace_store(signed, b"".join(b.to_bytes() for b in boxes), fmt)


def storms(signed: dict[str, bytes], scale: int = 1) -> Iterator[Mutant]:
    """Storms and deep nesting; `scale` multiplies the counts (the long tier uses larger ones)."""
    for n in (10, 100, 1000 * scale):
        yield Mutant(f"mp4/box-storm-{n}", bmff_storm(signed["mp4"], n))
        yield Mutant(f"mp4/uuid-storm-{n}", bmff_storm(signed["mp4"], n, b"uuid"))
        yield Mutant(f"png/chunk-storm-{n}", png_storm(signed["png"], n))
        yield Mutant(f"jpeg/app-storm-{n}", jpeg_storm(signed["jpeg"], n))
        yield Mutant(f"jpeg/jumbf-fragment-storm-{n}", jpeg_storm(signed["jpeg"], n, jumbf_fragments=True))
        yield Mutant(f"wav/chunk-storm-{n}", riff_storm(signed["wav"], n))
    for depth in (8, 64, 500 * scale):
        yield Mutant(f"mp4/nested-udta-{depth}", bmff_nesting(signed["mp4"], depth))
        for fmt in ("jpeg", "png", "mp4", "wav"):
            yield Mutant(f"{fmt}/nested-jumbf-{depth}", jumbf_nesting(signed[fmt], fmt, depth))


# --- the corpus ---------------------------------------------------------------------------------------------

FAMILIES = ("container", "jumbf", "generic")


def mutant(signed: dict[str, bytes], seed: int, index: int) -> Mutant:
    """Mutant number `index` of the corpus for `seed`: format, family and operator chosen by its own RNG."""
    rng = random.Random(f"{seed}:{index}")
    fmt = FORMATS[index % len(FORMATS)]
    family = rng.choice(FAMILIES)
    data = signed[fmt]
    if family == "container":
        op = rng.choice(
            [*TREE_OPS, *(("bad-crc",) if fmt == "png" else ()), *(("riff-size",) if fmt == "wav" else ())]
        )
        out = mutate_container(rng, data, fmt, op)
    elif family == "jumbf":
        op = rng.choice(JUMBF_OPS)
        start, end = find_store(data)
        out = _replace_store(data, mutate_store(rng, data[start:end], op), fmt)
    else:
        op = rng.choice(GENERIC_OPS)
        out = mutate_generic(rng, data, op, signed[rng.choice(FORMATS)])
    return Mutant(f"{fmt}/{family}-{op}#{index}", out)


def corpus(signed: dict[str, bytes], count: int, seed: int, *, storm_scale: int = 1) -> Iterator[Mutant]:
    """`count` seeded mutants (formats in turn), then the storms and nesting cases."""
    for index in range(count):
        yield mutant(signed, seed, index)
    yield from storms(signed, storm_scale)
