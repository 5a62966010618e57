"""Where the published trust lists live, and what each default profile trusts them for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from signing import C2PA_CLAIM_SIGNING_EKU, DOCUMENT_SIGNING_EKU

# The C2PA conformance program's published trust lists: the intended production profiles. The product
# downloads them with `hallmark trust update c2pa|c2pa-tsa --sha256 ...`; it does not ship copies.
C2PA_TRUST_LIST_URL = (
    "https://raw.githubusercontent.com/c2pa-org/conformance-public/main/trust-list/C2PA-TRUST-LIST.pem"
)
C2PA_TSA_TRUST_LIST_URL = (
    "https://raw.githubusercontent.com/c2pa-org/conformance-public/main/trust-list/C2PA-TSA-TRUST-LIST.pem"
)

Kind = Literal["signers", "tsa"]


@dataclass(frozen=True)
class DefaultSource:
    url: str
    kind: Kind
    allowed_ekus: tuple[str, ...]


DEFAULT_SOURCES: dict[str, DefaultSource] = {
    # Leaves under the C2PA trust list carry c2pa-kp-claimSigning plus emailProtection or documentSigning;
    # the engine accepts only emailProtection unless told (C2PA certificate policy, claimSigningLeaf).
    "c2pa": DefaultSource(
        C2PA_TRUST_LIST_URL,
        "signers",
        (C2PA_CLAIM_SIGNING_EKU.dotted_string, DOCUMENT_SIGNING_EKU.dotted_string),
    ),
    "c2pa-tsa": DefaultSource(C2PA_TSA_TRUST_LIST_URL, "tsa", ()),
}
