"""New token keys and the certificate signing requests the token signs for them."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from asn1crypto import algos, core, pem  # type: ignore[import-untyped]
from asn1crypto import csr as a_csr
from asn1crypto import keys as a_keys
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ecdsa_signature

from app.pkcs11.config import Pkcs11Config
from app.pkcs11.objects import algorithm_of, find_key_object, public_key_of
from app.pkcs11.schemes import (
    ALG_CURVE,
    CURVES,
    ED25519_OID,
    GENERATED_ALGORITHMS,
    RSA_GENERATED_BITS,
    PublicKey,
    Scheme,
    raw_sign,
    scheme_for,
    verifies,
)
from app.pkcs11.tokens import logged_in, require_mechanism, token_errors
from signing import (
    C2PA_CLAIM_SIGNING_EKU,
    EMAIL_PROTECTION_EKU,
    CertificateProfileError,
    KeyringError,
)


def generate_pkcs11_key(config: Pkcs11Config, alg: str = "es256") -> PublicKey:
    """Generate a key pair inside the token; return its public key. The private key never leaves the token.

    The private key is CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE and not CKA_EXTRACTABLE, may only sign, and
    carries `config.key_label` (refused if an object with that label exists).
    """
    if alg not in GENERATED_ALGORITHMS:
        raise KeyringError(
            f"Cannot generate a token key for algorithm {alg!r}.",
            hint="Use one of " + ", ".join(GENERATED_ALGORITHMS) + ".",
        )
    scheme = scheme_for(alg)
    key_id = secrets.token_bytes(16)  # CKA_ID pairs the public and the private object
    private_template = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    public_template: dict[Attribute, Any] = {Attribute.TOKEN: True}
    if alg.startswith("es"):
        key_type, generator, length = KeyType.EC, Mechanism.EC_KEY_PAIR_GEN, None
        public_template[Attribute.EC_PARAMS] = a_keys.ECDomainParameters(
            name="named", value=CURVES[ALG_CURVE[alg]][2]
        ).dump()
    elif alg.startswith("ps"):
        key_type, generator, length = KeyType.RSA, Mechanism.RSA_PKCS_KEY_PAIR_GEN, RSA_GENERATED_BITS
    else:
        key_type, generator, length = KeyType.EC_EDWARDS, Mechanism.EC_EDWARDS_KEY_PAIR_GEN, None
        public_template[Attribute.EC_PARAMS] = core.ObjectIdentifier(ED25519_OID).dump()
    with logged_in(config) as shared, shared.lock, token_errors(config, "generating a key"):
        require_mechanism(shared, generator, f"generating an {alg.upper()} key")
        require_mechanism(shared, scheme.mechanism, f"{alg.upper()} signing")
        session = shared.token.open(rw=True)  # inherits the token-wide login
        try:
            if next(session.get_objects({Attribute.LABEL: config.key_label}), None) is not None:
                raise KeyringError(
                    f"PKCS#11 token '{config.token_label}' already holds an object labelled "
                    f"'{config.key_label}'.",
                    hint="Choose a new key label; Hallmark never overwrites a token key.",
                )
            public, _private = session.generate_keypair(
                key_type,
                length,
                id=key_id,
                label=config.key_label,
                store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                mechanism=generator,
                public_template=public_template,
                private_template=private_template,
            )
            return public_key_of(public)
        finally:
            session.close()


_CSR_SIGNATURE_ALGORITHMS = {
    "es256": {"algorithm": "sha256_ecdsa"},
    "es384": {"algorithm": "sha384_ecdsa"},
    "es512": {"algorithm": "sha512_ecdsa"},
    "ed25519": {"algorithm": "ed25519"},
}


def _csr_signature_algorithm(scheme: Scheme) -> Any:
    if scheme.algorithm in _CSR_SIGNATURE_ALGORITHMS:
        return algos.SignedDigestAlgorithm(_CSR_SIGNATURE_ALGORITHMS[scheme.algorithm])
    assert scheme.digest is not None
    return algos.SignedDigestAlgorithm(
        {
            "algorithm": "rsassa_pss",
            "parameters": {
                "hash_algorithm": {"algorithm": scheme.digest},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": scheme.digest}},
                "salt_length": hashlib.new(scheme.digest).digest_size,
            },
        }
    )


def pkcs11_csr(config: Pkcs11Config, subject: x509.Name, alg: str | None = None) -> bytes:
    """A PEM certificate signing request for the token key, signed by the token.

    It asks for the C2PA claim-signer profile: KeyUsage digitalSignature (critical) and ExtendedKeyUsage
    emailProtection + C2PA claim signing. `alg` (default: what the key implies) picks the RSA-PSS hash; it
    must fit the key.
    """
    with logged_in(config) as shared, shared.lock, token_errors(config, "signing a certificate request"):
        private = find_key_object(shared.session, ObjectClass.PRIVATE_KEY, config)
        public_object = find_key_object(shared.session, ObjectClass.PUBLIC_KEY, config)
        scheme = scheme_for(algorithm_of(private, config, alg))
        if alg is not None and alg != scheme.algorithm:
            raise KeyringError(
                f"The token key '{config.key_label}' cannot sign {alg.upper()}; it signs "
                f"{scheme.algorithm.upper()}."
            )
        require_mechanism(shared, scheme.mechanism, f"{scheme.algorithm.upper()} signing")
        public = public_key_of(public_object)
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        extensions = a_x509.Extensions(
            [
                {"extn_id": "key_usage", "critical": True, "extn_value": {"digital_signature"}},
                {
                    "extn_id": "extended_key_usage",
                    "critical": False,
                    "extn_value": [EMAIL_PROTECTION_EKU.dotted_string, C2PA_CLAIM_SIGNING_EKU.dotted_string],
                },
            ]
        )
        info = a_csr.CertificationRequestInfo(
            {
                "version": "v1",
                "subject": a_x509.Name.load(subject.public_bytes()),
                "subject_pk_info": a_keys.PublicKeyInfo.load(spki),
                "attributes": [{"type": "extension_request", "values": [extensions]}],
            }
        )
        to_sign = bytes(info.dump())
        signature = raw_sign(private, scheme, to_sign)
    if not verifies(public, scheme, signature, to_sign):
        raise CertificateProfileError(
            f"The public and the private object labelled '{config.key_label}' are not one key pair."
        )
    if scheme.mechanism is Mechanism.ECDSA:
        signature = encode_ecdsa_signature(signature)  # X.509 wants DER ECDSA-Sig-Value, not r||s
    request = a_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": _csr_signature_algorithm(scheme),
            "signature": signature,
        }
    )
    pem_bytes = bytes(pem.armor("CERTIFICATE REQUEST", request.dump()))
    loaded = x509.load_pem_x509_csr(pem_bytes)
    if not loaded.is_signature_valid:
        raise KeyringError("The certificate request the token signed does not verify.")
    return pem_bytes
