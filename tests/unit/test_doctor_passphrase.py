"""The doctor tells "passphrase given for a plain key" from "no passphrase for an encrypted key" by what was
passed, never by the crypto library's message text."""

from __future__ import annotations

from signing.devpki import key_pem, new_key
from signing.doctor.findings import Finding
from signing.doctor.inputs import read_key


def test_a_passphrase_for_a_plain_key_and_none_for_an_encrypted_key_are_told_apart() -> None:
    key = new_key("es256")
    plain, encrypted = key_pem(key), key_pem(key, b"secret")
    given: list[Finding] = []
    assert read_key(plain, b"secret", given) is None
    missing: list[Finding] = []
    assert read_key(encrypted, None, missing) is None
    assert [f.message for f in given if f.check == "key-unreadable"] == [
        "A passphrase was given, but the key is not encrypted."
    ]
    assert [f.message for f in missing if f.check == "key-unreadable"] == [
        "The private key is encrypted and no passphrase was given."
    ]
    control: list[Finding] = []
    assert read_key(encrypted, b"secret", control) is not None
    assert [f.severity for f in control] == ["ok"]
