"""A key made inside a PKCS#11 token (SoftHSM2) through the CLI, activated, then signing for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.softhsm import softhsm_token

HALLMARK = str(Path(sys.executable).with_name("hallmark"))


def test_token_key_generate_activate_sign_verify(tmp_path: Path, interop_dir: Path) -> None:
    with softhsm_token(tmp_path / "hsm") as token:
        pin_file = tmp_path / "pin"
        pin_file.write_text(token.pin)
        pin_file.chmod(0o600)
        env = {
            "PATH": "/usr/bin:/bin",
            "HALLMARK_DATA_DIR": str(tmp_path / "var"),
            "HALLMARK_PKCS11_MODULE": str(token.module),
            "HALLMARK_PKCS11_TOKEN_LABEL": token.label,
            "HALLMARK_PKCS11_PIN_FILE": str(pin_file),
            "SOFTHSM2_CONF": str(token.conf),
        }

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [HALLMARK, *args], env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert token.pin not in done.stdout + done.stderr, "the PIN leaked into the output"
            return done

        assert run("keys", "init", "--dev").returncode == 0
        generated = run("keys", "generate", "--pkcs11", "--dev")
        assert generated.returncode == 0, generated.stderr
        key_id = generated.stdout.strip().splitlines()[-1]
        folder = tmp_path / "var" / "keys" / key_id
        assert not (folder / "key.pem").exists(), "a token key must not have a key file"
        assert (folder / "request.csr.pem").is_file()

        activated = run("keys", "activate", key_id, "--yes")
        assert activated.returncode == 0, activated.stderr
        [entry] = [k for k in json.loads(run("keys", "list", "--json").stdout) if k["key_id"] == key_id]
        assert (entry["state"], entry["storage"]) == ("active", "pkcs11")

        out = tmp_path / "signed.jpg"
        signed = run(
            "sign",
            str(interop_dir / "no_manifest.jpg"),
            "--model-name",
            "m",
            "--model-version",
            "1",
            "-o",
            str(out),
        )
        assert signed.returncode == 0, signed.stderr
        verified = run("verify", "--json", str(out))
        assert verified.returncode == 0, verified.stderr
        report = json.loads(verified.stdout)
        assert report["outcome"] == "trusted"
        [row] = json.loads(run("audit", "list", "--json").stdout)
        assert row["key_id"] == key_id
        assert row["certificate_sha256"] == entry["certificate_sha256"]
        assert run("keys", "doctor", key_id).returncode == 0
