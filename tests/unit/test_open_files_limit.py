"""`hallmark serve` raises its soft limit of open files to the hard one (every connection is a descriptor;
at the usual soft limit of 1,024 a thousand connections are refused by accept())."""

from __future__ import annotations

import subprocess
import sys

LOWER_AND_REPORT = """
import resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
if sys.argv[1] == "raise":
    from app.cli.media import raise_open_files_limit
    raise_open_files_limit()
now = resource.getrlimit(resource.RLIMIT_NOFILE)
print(now[0], hard)
"""


def limits_after(action: str) -> tuple[int, int]:
    command = [sys.executable, "-c", LOWER_AND_REPORT, action]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout.split()
    return int(out[0]), int(out[1])


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = limits_after("raise")
    assert hard > 256  # the machine allows more than the lowered limit, or the test shows nothing
    assert soft == hard


def test_without_it_the_soft_limit_stays_where_it_was() -> None:
    soft, _ = limits_after("keep")
    assert soft == 256
