"""The tamper-evident audit ledger, as pure functions a third party can run offline.

Every ledger row (a signature, a key event, an API-key or configuration event) is encoded canonically and
hashed into a leaf; a sealer appends leaves in order to a hash chain and an RFC 9162 Merkle tree, and signs
checkpoints (tree size, tree root, chain head) with the service key through the `KeySigner` port.

- Canonical row: compact JSON with sorted keys, UTF-8, of {"kind", "seq", "fields"}; timestamps become
  UTC `YYYY-MM-DDTHH:MM:SS.ffffffZ`, None fields are left out (a nullable column added later does not
  change old leaves).
- Leaf hash: SHA-256(0x00 || row); tree node: SHA-256(0x01 || left || right) (RFC 9162 section 2.1.1);
  chain hash: SHA-256(previous chain hash || leaf hash), starting from 32 zero bytes.
- `verify_ledger` walks rows, links and checkpoints and names every row altered, removed, inserted or
  reordered, first one first.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from signing.audit_time import timestamp_finding
from signing.certs import public_key_sha256
from signing.keys import KeySigner

Scalar = str | int | bool | float | None | datetime | date
CHAIN_START = bytes(32)
CHECKPOINT_FORMAT = "hallmark-audit-checkpoint/v1"
BUNDLE_FORMAT = "hallmark-audit-bundle/v1"
# A moved row is looked for among this many suspect positions around it (keeps the walk linear).
MATCH_WINDOW = 64
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


# --- canonical encoding and hashing ---------------------------------------------------------------------


def canonical_value(value: Scalar) -> str | int | bool | float | None:
    """The JSON value a column value is encoded as (timestamps in UTC with microseconds, 'Z')."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime(TIME_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    return value


def canonical_fields(fields: Mapping[str, Scalar]) -> dict[str, str | int | bool | float]:
    """The row's columns as they are hashed: canonical values, None left out."""
    out: dict[str, str | int | bool | float] = {}
    for name, value in fields.items():
        encoded = canonical_value(value)
        if encoded is not None:
            out[name] = encoded
    return out


def encode_row(kind: str, seq: int, fields: Mapping[str, Scalar]) -> bytes:
    """The canonical bytes of one ledger row: deterministic whatever the database returned."""
    body = {"kind": kind, "seq": seq, "fields": canonical_fields(fields)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaf_hash(kind: str, seq: int, fields: Mapping[str, Scalar]) -> bytes:
    return hashlib.sha256(b"\x00" + encode_row(kind, seq, fields)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def chain_hash(previous: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(previous + leaf).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 9162 Merkle tree hash of leaf hashes (the empty tree hashes to SHA-256 of nothing)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    return root_from_frontier(extend_frontier([], 0, leaves))


def extend_frontier(frontier: Sequence[bytes], size: int, leaves: Iterable[bytes]) -> list[bytes]:
    """The roots of the perfect subtrees of a tree of `size` leaves (largest first), after appending
    `leaves`: the sealer keeps only this (log n hashes) between checkpoints."""
    stack = list(frontier)
    for leaf in leaves:
        node, n = leaf, size
        while n & 1:  # merge with the equal-sized subtree on the left
            node = node_hash(stack.pop(), node)
            n >>= 1
        stack.append(node)
        size += 1
    return stack


def root_from_frontier(frontier: Sequence[bytes]) -> bytes:
    if not frontier:
        return hashlib.sha256(b"").digest()
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `leaves` (RFC 9162 section 2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError("index outside the tree")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(leaves[:k], index), merkle_root(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), merkle_root(leaves[:k])]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does `proof` place `leaf` at `index` of the tree of `size` with `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and node == root


# --- checkpoints --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditCheckpoint:
    """A signed statement that the first `tree_size` links have this tree root and chain head."""

    tree_size: int
    root_hash: str  # hex
    chain_head: str  # hex
    created_at: datetime
    key_id: str
    algorithm: str
    certificate_chain: str  # PEM, leaf first
    signature: str  # base64
    timestamp: str | None = None  # base64 DER RFC 3161 reply over the signature (signing/audit_time.py)

    def statement(self) -> bytes:
        return checkpoint_statement(
            self.tree_size, self.root_hash, self.chain_head, self.created_at, self.key_id
        )


def checkpoint_statement(
    tree_size: int, root_hash: str, chain_head: str, created_at: datetime, key_id: str
) -> bytes:
    """The bytes a checkpoint signature covers (a note with one field per line)."""
    when = str(canonical_value(created_at))
    lines = [CHECKPOINT_FORMAT, str(tree_size), root_hash, chain_head, when, key_id]
    return ("\n".join(lines) + "\n").encode()


def sign_checkpoint(
    signer: KeySigner, tree_size: int, root_hash: str, chain_head: str, created_at: datetime
) -> AuditCheckpoint:
    statement = checkpoint_statement(tree_size, root_hash, chain_head, created_at, signer.key_id)
    return AuditCheckpoint(
        tree_size=tree_size,
        root_hash=root_hash,
        chain_head=chain_head,
        created_at=created_at,
        key_id=signer.key_id,
        algorithm=signer.algorithm,
        certificate_chain=signer.chain_pem.decode(),
        signature=base64.b64encode(signer.sign(statement)).decode(),
    )


_EC_HASH: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "es256": hashes.SHA256,
    "es384": hashes.SHA384,
    "es512": hashes.SHA512,
}
_PS_HASH: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "ps256": hashes.SHA256,
    "ps384": hashes.SHA384,
    "ps512": hashes.SHA512,
}


def verify_signature(public: object, algorithm: str, data: bytes, signature: bytes) -> bool:
    """Check a signature made through a `KeySigner`: ECDSA as DER (PEM keys) or raw r||s (tokens)."""
    try:
        if isinstance(public, ec.EllipticCurvePublicKey) and algorithm in _EC_HASH:
            digest = _EC_HASH[algorithm]()
            size = (public.curve.key_size + 7) // 8
            candidates = [signature]
            if len(signature) == 2 * size:
                r, s = int.from_bytes(signature[:size]), int.from_bytes(signature[size:])
                candidates.append(encode_dss_signature(r, s))
            for candidate in candidates:
                try:
                    public.verify(candidate, data, ec.ECDSA(digest))
                    return True
                except (InvalidSignature, ValueError):
                    continue
            return False
        if isinstance(public, ed25519.Ed25519PublicKey) and algorithm == "ed25519":
            public.verify(signature, data)
            return True
        if isinstance(public, rsa.RSAPublicKey) and algorithm in _PS_HASH:
            h = _PS_HASH[algorithm]()
            public.verify(signature, data, padding.PSS(padding.MGF1(h), h.digest_size), h)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def checkpoint_problem(cp: AuditCheckpoint, trusted_keys: Iterable[str] | None) -> str | None:
    """Why this checkpoint's signature is not acceptable, or None. `trusted_keys` (SHA-256 of the SPKI, hex)
    pins the signer; None accepts any certificate (the check then only shows self-consistency)."""
    try:
        leaf = x509.load_pem_x509_certificates(cp.certificate_chain.encode())[0]
    except ValueError:
        return "its certificate chain cannot be read"
    public = leaf.public_key()
    if trusted_keys is not None and public_key_sha256(public) not in set(trusted_keys):
        return f"it is signed by a key that is not trusted (key id {cp.key_id!r})"
    try:
        signature = base64.b64decode(cp.signature, validate=True)
    except ValueError:
        return "its signature is not base64"
    if not verify_signature(public, cp.algorithm, cp.statement(), signature):
        return "its signature does not verify"
    return None


# --- verification ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerRow:
    """One row as stored: which table (`kind`), its database sequence number, its columns."""

    kind: str
    seq: int
    fields: Mapping[str, Scalar]

    def leaf(self, seq: int | None = None) -> bytes:
        return leaf_hash(self.kind, self.seq if seq is None else seq, self.fields)


@dataclass(frozen=True)
class LedgerLink:
    """The sealer's record that chain position `position` (1-based) holds row (kind, seq)."""

    position: int
    kind: str
    seq: int
    leaf_hash: str  # hex
    chain_hash: str  # hex


class AuditFaultKind(StrEnum):
    ALTERED = "altered"  # the row at this seq is not the row that was sealed there
    REMOVED = "removed"  # a sealed row is gone
    INSERTED = "inserted"  # a row that was never sealed sits among sealed rows
    REORDERED = "reordered"  # a sealed row now sits at another seq
    LINK = "link"  # the sealer's links were edited (chain hash broken, gap in positions)
    CHECKPOINT = "checkpoint"  # a checkpoint's signature, root or chain head does not hold


@dataclass(frozen=True)
class AuditFault:
    kind: AuditFaultKind
    row_kind: str | None
    seq: int | None
    position: float  # where in the chain it is found (an inserted row sits between positions)
    message: str


@dataclass(frozen=True)
class AuditReport:
    faults: tuple[AuditFault, ...]
    sealed: int  # links
    checkpoints: int
    checkpointed: int  # tree size of the newest valid checkpoint
    unsealed: Mapping[str, int] = field(default_factory=dict)
    timestamped: int = 0  # checkpoints carrying a valid timestamp token
    # The newest timestamped checkpoint: its tree size, the TSA's time, and whether the TSA was checked
    # against a trust anchor (otherwise the time is the token's claim, bound to the checkpoint only).
    latest_timestamp: tuple[int, datetime, bool] | None = None

    @property
    def intact(self) -> bool:
        return not self.faults

    @property
    def first(self) -> AuditFault | None:
        return self.faults[0] if self.faults else None


def _link_faults(links: Sequence[LedgerLink]) -> tuple[list[AuditFault], list[bytes], list[bytes]]:
    """Positions contiguous from 1, chain hashes recomputed; returns the leaves and chain heads."""
    faults: list[AuditFault] = []
    leaves: list[bytes] = []
    heads: list[bytes] = []
    head = CHAIN_START
    for i, link in enumerate(links, start=1):
        if link.position != i:
            faults.append(
                AuditFault(
                    AuditFaultKind.LINK,
                    link.kind,
                    link.seq,
                    i,
                    f"chain position {i} is missing or duplicated",
                )
            )
        try:
            leaf = bytes.fromhex(link.leaf_hash)
        except ValueError:
            leaf = b""
        head = chain_hash(head, leaf)
        if head.hex() != link.chain_hash:
            faults.append(
                AuditFault(AuditFaultKind.LINK, link.kind, link.seq, i, f"chain hash {i} was edited")
            )
        leaves.append(leaf)
        heads.append(head)
    return faults, leaves, heads


def _checkpoint_faults(
    checkpoints: Sequence[AuditCheckpoint],
    leaves: Sequence[bytes],
    heads: Sequence[bytes],
    keys: list[str] | None,
) -> tuple[list[AuditFault], int]:
    faults: list[AuditFault] = []
    covered = 0
    frontier: list[bytes] = []
    size = 0
    for number, cp in enumerate(sorted(checkpoints, key=lambda c: c.tree_size), start=1):
        pos = float(cp.tree_size)
        problem = checkpoint_problem(cp, keys)
        if problem is None and cp.tree_size > len(leaves):
            problem = f"it covers {cp.tree_size} links but only {len(leaves)} exist (links removed)"
        if problem is None:
            frontier = extend_frontier(frontier, size, leaves[size : cp.tree_size])
            size = cp.tree_size
            if root_from_frontier(frontier).hex() != cp.root_hash:
                problem = "its tree root does not match the links (a sealed link was edited)"
            elif cp.tree_size and heads[cp.tree_size - 1].hex() != cp.chain_head:
                problem = "its chain head does not match the links"
        if problem is not None:
            faults.append(
                AuditFault(
                    AuditFaultKind.CHECKPOINT,
                    None,
                    None,
                    pos,
                    f"checkpoint {number} (size {cp.tree_size}): {problem}",
                )
            )
        else:
            covered = max(covered, cp.tree_size)
    if covered < len(leaves):
        faults.append(
            AuditFault(
                AuditFaultKind.LINK,
                None,
                None,
                len(leaves) + 0.9,  # after what explains it (a bad checkpoint, an edited link)
                f"chain positions {covered + 1}..{len(leaves)} are not covered by a valid signed checkpoint",
            )
        )
    return faults, covered


def verify_ledger(
    rows: Iterable[LedgerRow],
    links: Sequence[LedgerLink],
    checkpoints: Sequence[AuditCheckpoint],
    *,
    trusted_keys: Iterable[str] | None = None,
    tsa_roots: Sequence[x509.Certificate] | None = None,
) -> AuditReport:
    """Check that every sealed row is still there, unchanged, at its seq, that no row was slipped in among
    them, that the chain and tree the sealer built are the ones its signed checkpoints cover. Rows above a
    kind's newest sealed seq are unsealed (not a fault: the sealer has not reached them yet)."""
    links = sorted(links, key=lambda lk: lk.position)
    faults, leaves, heads = _link_faults(links)
    keys = None if trusted_keys is None else list(trusted_keys)
    cp_faults, covered = _checkpoint_faults(checkpoints, leaves, heads, keys)
    ts_faults, timestamped, latest = _timestamp_faults(checkpoints, tsa_roots)
    walk = _Walk(rows, links)
    faults += cp_faults + ts_faults + walk.link_faults() + walk.stray_faults()
    faults.sort(key=lambda f: (f.position, f.seq if f.seq is not None else -1))
    return AuditReport(
        faults=tuple(faults),
        sealed=len(links),
        checkpoints=len(checkpoints),
        checkpointed=covered,
        unsealed=walk.unsealed,
        timestamped=timestamped,
        latest_timestamp=latest,
    )


def _timestamp_faults(
    checkpoints: Sequence[AuditCheckpoint], tsa_roots: Sequence[x509.Certificate] | None
) -> tuple[list[AuditFault], int, tuple[int, datetime, bool] | None]:
    """A checkpoint need not carry a timestamp (no TSA configured), but one that does must carry a token
    over its own signature; with `tsa_roots`, signed by a TSA chaining to one of them."""
    faults: list[AuditFault] = []
    valid = 0
    latest: tuple[int, datetime, bool] | None = None
    for number, cp in enumerate(sorted(checkpoints, key=lambda c: c.tree_size), start=1):
        if cp.timestamp is None:
            continue
        finding = timestamp_finding(cp.timestamp, cp.signature, tsa_roots)
        if finding.problem is not None or finding.time is None:
            message = f"checkpoint {number} (size {cp.tree_size}): {finding.problem}"
            faults.append(AuditFault(AuditFaultKind.CHECKPOINT, None, None, float(cp.tree_size), message))
            continue
        valid += 1
        latest = (cp.tree_size, finding.time, finding.tsa_checked)
    return faults, valid, latest


class _Walk:
    """Rows against links: which sealed positions hold their row, and what happened where they do not."""

    def __init__(self, rows: Iterable[LedgerRow], links: Sequence[LedgerLink]):
        self.rows: dict[tuple[str, int], LedgerRow] = {(r.kind, r.seq): r for r in rows}
        self.links = links
        self.sealed: dict[tuple[str, int], LedgerLink] = {}
        self.position: dict[tuple[str, int], float] = {}
        self.head: dict[str, int] = {}
        for i, link in enumerate(links, start=1):
            self.sealed[(link.kind, link.seq)] = link
            self.position[(link.kind, link.seq)] = float(i)
            self.head[link.kind] = max(self.head.get(link.kind, link.seq), link.seq)
        suspects: dict[str, list[int]] = {}
        self.broken: list[LedgerLink] = []
        for link in links:
            row = self.rows.get((link.kind, link.seq))
            if row is None or row.leaf().hex() != link.leaf_hash:
                self.broken.append(link)
                suspects.setdefault(link.kind, []).append(link.seq)
        self.unsealed: dict[str, int] = {}
        self.stray: list[LedgerRow] = []
        for key, row in sorted(self.rows.items()):
            if key in self.sealed:
                continue
            if self.above_head(row):
                self.unsealed[row.kind] = self.unsealed.get(row.kind, 0) + 1
            self.stray.append(row)
            suspects.setdefault(row.kind, []).append(row.seq)
        self.suspects = {kind: sorted(seqs) for kind, seqs in suspects.items()}

    def above_head(self, row: LedgerRow) -> bool:
        head = self.head.get(row.kind)
        return head is None or row.seq > head

    def near(self, kind: str, seq: int) -> list[int]:
        seqs = self.suspects.get(kind, [])
        lo = _bisect(seqs, seq - MATCH_WINDOW)
        return [s for s in seqs[lo : lo + 2 * MATCH_WINDOW + 1] if s != seq and abs(s - seq) <= MATCH_WINDOW]

    def sealed_elsewhere(self, row: LedgerRow) -> int | None:
        """The seq this row's content was sealed at, when it is not where it sits now."""
        for s in self.near(row.kind, row.seq):
            other = self.sealed.get((row.kind, s))
            if other is not None and row.leaf(s).hex() == other.leaf_hash:
                return s
        return None

    def content_now_at(self, link: LedgerLink) -> int | None:
        """The seq where the row sealed at `link` sits now, when it moved."""
        for s in self.near(link.kind, link.seq):
            row = self.rows.get((link.kind, s))
            if row is not None and row.leaf(link.seq).hex() == link.leaf_hash:
                return s
        return None

    def link_faults(self) -> list[AuditFault]:
        faults = []
        for link in self.broken:
            pos = self.position[(link.kind, link.seq)]
            row = self.rows.get((link.kind, link.seq))
            moved_to = self.content_now_at(link)
            origin = self.sealed_elsewhere(row) if row is not None else None
            where = f"{link.kind} seq {link.seq} (chain position {int(pos)}): "
            moved = f"; the row sealed here moved to seq {moved_to}" if moved_to is not None else ""
            if row is None and moved_to is None:
                kind, text = AuditFaultKind.REMOVED, "the sealed row was removed"
            elif row is None:
                kind, text = AuditFaultKind.REORDERED, f"the sealed row moved to seq {moved_to}"
            elif origin is not None:
                kind, text = AuditFaultKind.REORDERED, f"holds the row sealed at seq {origin}{moved}"
            elif moved_to is not None:
                kind, text = AuditFaultKind.INSERTED, f"a row that was never sealed was inserted here{moved}"
            else:
                kind, text = AuditFaultKind.ALTERED, "the row was altered after it was sealed"
            faults.append(AuditFault(kind, link.kind, link.seq, pos, where + text))
        return faults

    def stray_faults(self) -> list[AuditFault]:
        faults = []
        for row in self.stray:
            origin = self.sealed_elsewhere(row)
            where = f"{row.kind} seq {row.seq}: "
            if origin is not None:  # a sealed row sits at a seq nobody sealed (pushed there by an insert)
                pos = self.position[(row.kind, origin)] + 0.5
                faults.append(
                    AuditFault(
                        AuditFaultKind.REORDERED,
                        row.kind,
                        row.seq,
                        pos,
                        where + f"holds the row sealed at seq {origin}",
                    )
                )
            elif not self.above_head(row):
                pos = self.position_before(row) + 0.5
                text = "a row that was never sealed sits among sealed rows (inserted)"
                faults.append(AuditFault(AuditFaultKind.INSERTED, row.kind, row.seq, pos, where + text))
        return faults

    def position_before(self, row: LedgerRow) -> float:
        """The chain position of the sealed row of the same kind just below this one (0 when none)."""
        below = [s for (kind, s) in self.sealed if kind == row.kind and s < row.seq]
        return self.position[(row.kind, max(below))] if below else 0.0


def _bisect(values: Sequence[int], x: int) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


# --- links for the sealer -------------------------------------------------------------------------------


def link_rows(
    rows: Sequence[LedgerRow], *, start_position: int, chain_head: bytes
) -> tuple[list[LedgerLink], bytes]:
    """Links for `rows` appended after `start_position - 1` links whose chain head is `chain_head`."""
    out: list[LedgerLink] = []
    head = chain_head
    for offset, row in enumerate(rows):
        leaf = row.leaf()
        head = chain_hash(head, leaf)
        out.append(LedgerLink(start_position + offset, row.kind, row.seq, leaf.hex(), head.hex()))
    return out, head


# --- bundles --------------------------------------------------------------------------------------------


def bundle_document(
    rows: Iterable[LedgerRow], links: Iterable[LedgerLink], checkpoints: Iterable[AuditCheckpoint]
) -> dict[str, object]:
    """A self-contained JSON document: every row (canonical fields), link and signed checkpoint."""
    return {
        "format": BUNDLE_FORMAT,
        "rows": [{"kind": r.kind, "seq": r.seq, "fields": canonical_fields(r.fields)} for r in rows],
        "links": [
            {
                "position": lk.position,
                "kind": lk.kind,
                "seq": lk.seq,
                "leaf": lk.leaf_hash,
                "chain": lk.chain_hash,
            }
            for lk in links
        ],
        "checkpoints": [_checkpoint_json(c) for c in checkpoints],
    }


def read_bundle(
    document: Mapping[str, object],
) -> tuple[list[LedgerRow], list[LedgerLink], list[AuditCheckpoint]]:
    """The inverse of `bundle_document`; raises ValueError for a document that is not a bundle."""
    if document.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"not a {BUNDLE_FORMAT} document")
    try:
        rows = [
            LedgerRow(str(r["kind"]), _int(r["seq"]), _fields(r["fields"])) for r in _items(document, "rows")
        ]
        links = [
            LedgerLink(
                _int(lk["position"]), str(lk["kind"]), _int(lk["seq"]), str(lk["leaf"]), str(lk["chain"])
            )
            for lk in _items(document, "links")
        ]
        checkpoints = [
            AuditCheckpoint(
                tree_size=_int(c["tree_size"]),
                root_hash=str(c["root_hash"]),
                chain_head=str(c["chain_head"]),
                created_at=datetime.strptime(str(c["created_at"]), TIME_FORMAT).replace(tzinfo=UTC),
                key_id=str(c["key_id"]),
                algorithm=str(c["algorithm"]),
                certificate_chain=str(c["certificate_chain"]),
                signature=str(c["signature"]),
                timestamp=str(c["timestamp"]) if c.get("timestamp") is not None else None,
            )
            for c in _items(document, "checkpoints")
        ]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed bundle: {exc}") from None
    return rows, links, checkpoints


def _items(document: Mapping[str, object], name: str) -> list[dict[str, object]]:
    value = document.get(name)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"malformed bundle: '{name}' is not a list of objects")
    return [dict(v) for v in value]


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _fields(value: object) -> dict[str, Scalar]:
    if not isinstance(value, dict) or not all(
        isinstance(v, str | int | float | bool) or v is None for v in value.values()
    ):
        raise TypeError("row fields must be an object of scalars")
    return {str(k): v for k, v in value.items()}


# --- inclusion proofs for one row ---------------------------------------------------------------------

PROOF_FORMAT = "hallmark-audit-inclusion/v1"


def _checkpoint_json(c: AuditCheckpoint) -> dict[str, object]:
    return {
        "tree_size": c.tree_size,
        "root_hash": c.root_hash,
        "chain_head": c.chain_head,
        "created_at": canonical_value(c.created_at),
        "key_id": c.key_id,
        "algorithm": c.algorithm,
        "certificate_chain": c.certificate_chain,
        "signature": c.signature,
    } | ({"timestamp": c.timestamp} if c.timestamp is not None else {})


def inclusion_document(
    row: LedgerRow, position: int, leaves: Sequence[bytes], checkpoint: AuditCheckpoint
) -> dict[str, object]:
    """Proof that `row`, sealed at chain `position` (1-based), is in the tree a signed checkpoint covers.
    `leaves` are the leaf hashes of the first `checkpoint.tree_size` links."""
    if not 1 <= position <= checkpoint.tree_size <= len(leaves):
        raise ValueError("the row is not under this checkpoint")
    return {
        "format": PROOF_FORMAT,
        "row": {"kind": row.kind, "seq": row.seq, "fields": canonical_fields(row.fields)},
        "leaf_index": position - 1,
        "proof": [h.hex() for h in inclusion_proof(leaves[: checkpoint.tree_size], position - 1)],
        "checkpoint": _checkpoint_json(checkpoint),
    }


def inclusion_problem(document: Mapping[str, object], trusted_keys: Iterable[str]) -> str | None:
    """Why an inclusion proof does not hold (None when it does): the checkpoint must be signed by a trusted
    key and the row's leaf hash, with the audit path, must give the checkpoint's root."""
    if document.get("format") != PROOF_FORMAT:
        return f"not a {PROOF_FORMAT} document"
    try:
        rows, _, checkpoints = read_bundle(
            {"format": BUNDLE_FORMAT, "rows": [document["row"]], "links": [],
             "checkpoints": [document["checkpoint"]]}
        )  # fmt: skip
        index = _int(document["leaf_index"])
        proof_items = document["proof"]
        if not isinstance(proof_items, list):
            raise TypeError("proof is not a list")
        proof = [bytes.fromhex(str(h)) for h in proof_items]
    except (KeyError, TypeError, ValueError) as exc:
        return f"malformed proof: {exc}"
    cp = checkpoints[0]
    problem = checkpoint_problem(cp, list(trusted_keys))
    if problem is not None:
        return f"the checkpoint does not hold: {problem}"
    if not verify_inclusion(rows[0].leaf(), index, cp.tree_size, proof, bytes.fromhex(cp.root_hash)):
        return "the row is not in the tree the checkpoint signs (row changed or proof wrong)"
    return None
