"""Sign refuses a file that is cut short, in every supported format, over HTTP (422) and in the CLI.

Each sample of `tests/media_samples.py` is signed whole (the negative control: it is accepted), then cut:
at half its length, after its first 5 KB (or a third, for a smaller file) and 100 bytes before its end.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import app as cli
from signing.completeness_audio import flac_frame_header
from tests.conftest import make_data_dir
from tests.integration.test_http_sign import ledger_count, sign
from tests.media_samples import SAMPLES, Sample, SampleStore
from tests.pki import TestPki as Pki

SAMPLE_IDS = [s.id for s in SAMPLES]


def cuts(data: bytes) -> dict[str, bytes]:
    first = 5000 if len(data) > 10_000 else len(data) // 3
    return {"half": data[: len(data) // 2], "head": data[:first], "tail-100": data[: len(data) - 100]}


@pytest.mark.parametrize("sample", SAMPLES, ids=SAMPLE_IDS)
def test_sign_refuses_every_truncation_and_accepts_the_whole_file(
    client: TestClient, auth: dict[str, str], samples: SampleStore, sample: Sample
) -> None:
    data = samples.data(sample)
    whole = sign(client, auth, data)
    assert whole.status_code == 200, whole.text
    assert ledger_count(client) == 1
    for name, cut in cuts(data).items():
        response = sign(client, auth, cut)
        assert response.status_code == 422, (name, response.text)
        problem = response.json()
        assert problem["type"].endswith("/incomplete-asset"), (name, problem)
        assert "incomplete or damaged" in problem["detail"]
        assert "Nothing was signed" in problem["detail"]
    assert ledger_count(client) == 1  # nothing refused was recorded


def cli_sign(data_dir: Path, path: Path, out: Path) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALLMARK_")}
    env.update(HALLMARK_DATA_DIR=str(data_dir), COLUMNS="200", NO_COLOR="1")
    args = ["sign", str(path), "--model-name", "m", "--model-version", "1", "--out", str(out)]
    result = CliRunner().invoke(cli, args, env=env)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def cli_data_dir(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Path:
    return make_data_dir(tmp_path_factory.mktemp("cli") / "var", pki)


@pytest.mark.parametrize("sample", SAMPLES, ids=SAMPLE_IDS)
def test_cli_sign_refuses_a_truncated_file(
    cli_data_dir: Path, samples: SampleStore, sample: Sample, tmp_path: Path
) -> None:
    data = samples.data(sample)
    whole, half = tmp_path / f"whole{sample.suffix}", tmp_path / f"half{sample.suffix}"
    whole.write_bytes(data)
    half.write_bytes(cuts(data)["half"])
    code, output = cli_sign(cli_data_dir, whole, tmp_path / "whole.out")
    assert code == 0, output
    assert (tmp_path / "whole.out").is_file()
    code, output = cli_sign(cli_data_dir, half, tmp_path / "half.out")
    assert code == 1, output
    assert "incomplete or damaged" in output
    assert not (tmp_path / "half.out").exists()


def test_flac_cut_exactly_between_two_frames_is_refused(
    client: TestClient, auth: dict[str, str], samples: SampleStore
) -> None:
    """Every frame left is whole: only STREAMINFO's sample count shows that the end is missing."""
    data = samples.data("flac")
    starts = [p for p in range(len(data)) if flac_frame_header(data, p) is not None]
    response = sign(client, auth, data[: starts[-1]])
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "The FLAC file is incomplete or damaged: its audio ends before the last sample its header announces."
    )
    assert sign(client, auth, data).status_code == 200
