"""A C2PA manifest store as JUMBF boxes: enough to keep only its active manifest (the Soft Binding
Resolution API's `returnActiveManifest`).

The store is one JUMBF superbox (`jumb`) holding its description box (`jumd`, label `c2pa`) and one
superbox per manifest, the active manifest last (C2PA 2.x, "Manifest Store").
"""

from __future__ import annotations

import struct

from signing.errors import MalformedAssetError


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole box) for each box in `data`, in order (ISO/IEC 19566-5 / ISO BMFF box headers)."""
    boxes, at = [], 0
    while at < len(data):
        if len(data) - at < 8:
            raise MalformedAssetError("The manifest store ends inside a box header.")
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            if len(data) - at < 16:
                raise MalformedAssetError("The manifest store ends inside a box header.")
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        elif size == 0:
            size = len(data) - at
        if size < 8 or at + size > len(data):
            raise MalformedAssetError("A box of the manifest store runs past its end.")
        boxes.append((kind, data[at : at + size]))
        at += size
    return boxes


def active_manifest_only(store: bytes) -> bytes:
    """The store with its last (active) manifest alone; the same bytes when it holds only that one. A
    manifest that names an earlier one as its ingredient still names it: that one is no longer included."""
    top = _boxes(store)
    if len(top) != 1 or top[0][0] != b"jumb":
        raise MalformedAssetError("The manifest store is not one JUMBF superbox.")
    outer = top[0][1]
    header = 16 if struct.unpack(">I", outer[:4])[0] == 1 else 8
    children = _boxes(outer[header:])
    if not children or children[0][0] != b"jumd":
        raise MalformedAssetError("The manifest store has no JUMBF description box.")
    manifests = [box for kind, box in children[1:] if kind == b"jumb"]
    if not manifests:
        raise MalformedAssetError("The manifest store holds no manifest.")
    if len(manifests) == 1:
        return store
    body = children[0][1] + manifests[-1]
    return struct.pack(">I4s", 8 + len(body), b"jumb") + body
