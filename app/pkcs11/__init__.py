"""Keys in hardware: a PKCS#11 token behind the core's `KeySigner` port.

The private key is generated inside the token, marked sensitive and non-extractable, and never leaves it:
Hallmark hashes the claim on the host and asks the token to sign the digest (see `schemes`). Signers on one
token share one logged-in session under the module's lock (see `tokens`). A PIN never appears in a
message, a `repr` or an exception chain.
"""

from app.pkcs11.config import Pkcs11Config, pin_from
from app.pkcs11.enrolment import generate_pkcs11_key, pkcs11_csr
from app.pkcs11.schemes import GENERATED_ALGORITHMS
from app.pkcs11.signer import Pkcs11KeySigner

__all__ = [
    "GENERATED_ALGORITHMS",
    "Pkcs11Config",
    "Pkcs11KeySigner",
    "generate_pkcs11_key",
    "pin_from",
    "pkcs11_csr",
]
