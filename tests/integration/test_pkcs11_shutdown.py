"""The in-process service gives its PKCS#11 token back when it stops: every token key it opened is closed, so
the process holds no login on the token afterwards (app/pkcs11/tokens.py counts the signers sharing one).

Before this was fixed the service kept the token registered after shutdown; a later token with the same
label (a fresh SoftHSM directory, like the next test's) then found the stale slot (SlotIDInvalid)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from app.bootstrap import init_dev_keys
from app.keyadmin import activate, generate
from app.main import create_app
from app.pkcs11 import generate_pkcs11_key
from app.pkcs11.tokens import open_tokens
from app.settings import Settings
from tests.softhsm import SoftHsmToken, softhsm_token


def token_settings(tmp_path: Path, token: SoftHsmToken, **extra: object) -> Settings:
    pin_file = tmp_path / "pin"
    pin_file.write_text(token.pin)
    pin_file.chmod(0o600)
    return Settings(
        data_dir=tmp_path / "var",
        pkcs11_module=token.module,
        pkcs11_token_label=token.label,
        pkcs11_pin_file=pin_file,
        **extra,  # type: ignore[arg-type]
    )


def active_token_key(settings: Settings) -> str:
    """A development keyring whose active key lives in the token (what `keys generate --pkcs11 --dev` and
    `keys activate` do)."""
    init_dev_keys(settings)
    entry, _csr, _chain = generate(settings, alg="es256", dev=True, pkcs11=True)
    activate(settings, entry.id)
    return entry.id


def test_stopping_the_service_releases_its_token_and_a_new_token_of_that_label_opens(tmp_path: Path) -> None:
    with softhsm_token(tmp_path / "hsm") as token:
        settings = token_settings(tmp_path, token)
        key_id = active_token_key(settings)
        held = (str(token.module), token.label)
        assert held not in open_tokens()  # generating and activating released their logins
        with TestClient(create_app(settings)) as client:
            assert client.get("/readyz").status_code == 200
            ctx = client.app.state.runtime.sign_ctx  # type: ignore[attr-defined]
            assert ctx.signer.key.key_id == key_id
            assert open_tokens()[held] == 1  # control: the running service signs through the token
        assert held not in open_tokens()
    # The consequence that mattered: a new token with the same label, in a new SoftHSM directory, opens.
    with softhsm_token(tmp_path / "hsm-again") as again:
        public = generate_pkcs11_key(again.config("after-restart"), "es256")
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == "secp256r1"
        assert (str(again.module), again.label) not in open_tokens()


def test_a_key_rotated_out_while_running_is_released_at_shutdown_too(tmp_path: Path) -> None:
    with softhsm_token(tmp_path / "hsm") as token:
        settings = token_settings(tmp_path, token, keyring_poll_seconds=0.001)
        first = active_token_key(settings)
        held = (str(token.module), token.label)
        with TestClient(create_app(settings)) as client:
            runtime = client.app.state.runtime  # type: ignore[attr-defined]
            assert runtime.sign_ctx.signer.key.key_id == first
            entry, _csr, _chain = generate(settings, alg="es256", dev=True, pkcs11=True)
            activate(settings, entry.id)
            assert runtime.sign_ctx.signer.key.key_id == entry.id  # the watch swapped the key in
            # Both stay open while running: a request that took the old context may still be signing.
            assert open_tokens()[held] == 2
        assert held not in open_tokens()
