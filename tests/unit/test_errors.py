"""errors.py: one tree, secret-free diagnostics, one distinct code per class."""

from __future__ import annotations

import pytest

import signing
from signing import errors
from signing.errors import HallmarkError


def all_error_classes() -> list[type[HallmarkError]]:
    found: list[type[HallmarkError]] = []
    pending: list[type[HallmarkError]] = [HallmarkError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_diagnostics_minimal() -> None:
    exc = errors.ConfigError("Trust directory is empty.")
    assert exc.diagnostics() == {
        "code": "configuration",
        "title": "Invalid configuration",
        "message": "Trust directory is empty.",
    }
    assert str(exc) == "Trust directory is empty."


def test_diagnostics_with_hint_and_details() -> None:
    exc = errors.AssetTooLargeError("Too big.", hint="Send at most 50 MB.", details={"limit": 50})
    assert exc.diagnostics() == {
        "code": "asset-too-large",
        "title": "File too large",
        "message": "Too big.",
        "hint": "Send at most 50 MB.",
        "details": {"limit": 50},
    }


def test_details_are_copied() -> None:
    details = {"field": "provider"}
    exc = errors.InvalidMetadataError("x", details=details)
    details["field"] = "changed"
    assert exc.diagnostics()["details"] == {"field": "provider"}


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_every_class_has_own_code_and_title(cls: type[HallmarkError]) -> None:
    assert "code" in vars(cls)
    assert "title" in vars(cls)
    diag = cls("m").diagnostics()
    assert set(diag) == {"code", "title", "message"}


def test_codes_are_distinct() -> None:
    classes = all_error_classes()
    codes = [cls.code for cls in classes]
    assert len(classes) >= 16  # the tree in errors.py
    assert len(set(codes)) == len(codes), codes


def test_public_errors_are_in_the_tree() -> None:
    exported = {getattr(signing, name) for name in signing.__all__}
    public_errors = {obj for obj in exported if isinstance(obj, type) and issubclass(obj, BaseException)}
    assert public_errors <= set(all_error_classes())
    assert errors.VerificationError in public_errors


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (errors.KeyNotFoundError, errors.KeyringError),
        (errors.CertificateProfileError, errors.KeyringError),
        (errors.UnsupportedMediaError, errors.AssetError),
        (errors.AssetTooLargeError, errors.AssetError),
        (errors.EmptyAssetError, errors.MalformedAssetError),
        (errors.MalformedAssetError, errors.AssetError),
        (errors.TimestampAuthorityError, errors.SigningError),
        (errors.LedgerError, errors.SigningError),
    ],
)
def test_fault_domains(child: type[HallmarkError], parent: type[HallmarkError]) -> None:
    assert issubclass(child, parent)
