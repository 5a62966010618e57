"""Integration fixtures: unsigned media samples of every format, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.media_samples import Sample, SampleStore, fail_if_missing_tool


class SessionSamples(SampleStore):
    """A `SampleStore` that fails the test when a tool to make or decode a sample is missing."""

    def path(self, sample: Sample | str) -> Path:
        return fail_if_missing_tool(lambda: super(SessionSamples, self).path(sample))

    def decoded(self, sample: Sample | str) -> str:
        return fail_if_missing_tool(lambda: super(SessionSamples, self).decoded(sample))


@pytest.fixture(scope="session")
def samples(interop_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleStore:
    return SessionSamples(interop_dir, tmp_path_factory.mktemp("media-samples"))
