"""The certificate OIDs of the C2PA profile (one definition each), and the names printed for OIDs."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

C2PA_CLAIM_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")  # c2pa-kp-claimSigning
DOCUMENT_SIGNING_EKU = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning (RFC 9336)
C2PA_POLICY = x509.ObjectIdentifier("1.3.6.1.4.1.62558.1.1")  # c2pa-certificate-policy
C2PA_ASSURANCE_LEVEL = x509.ObjectIdentifier("1.3.6.1.4.1.62558.3")  # id-c2pa-al
C2PA_AL1 = "1.3.6.1.4.1.62558.3.10"
C2PA_AL2 = "1.3.6.1.4.1.62558.3.20"
C2PA_CPL_RECORD = x509.ObjectIdentifier("1.3.6.1.4.1.62558.4")  # c2pa-cpl-record
EMAIL_PROTECTION_EKU = ExtendedKeyUsageOID.EMAIL_PROTECTION  # what the engine accepts by default

#: What the engine accepts as a claim signer's EKU unless its trust_config lists more.
DEFAULT_ENGINE_EKUS: tuple[str, ...] = (EMAIL_PROTECTION_EKU.dotted_string,)

EKU_NAMES = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
    C2PA_CLAIM_SIGNING_EKU: "c2pa-kp-claimSigning",
    DOCUMENT_SIGNING_EKU: "documentSigning",
    x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.12"): "Microsoft documentSigning",
}
SIGNATURE_ALGORITHMS = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "RSASSA-PSS",
    SignatureAlgorithmOID.ED25519: "Ed25519",
}
WEAK_SIGNATURE_ALGORITHMS = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "dsa-with-SHA256",
    SignatureAlgorithmOID.ED448: "Ed448",
}
