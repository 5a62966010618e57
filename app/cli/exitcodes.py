"""The CLI's exit codes: one table, documented in the README, that scripts can branch on."""

from __future__ import annotations

from enum import IntEnum

from signing import Outcome


class ExitCode(IntEnum):
    OK = 0  # done; `verify`: trusted credentials; `keys doctor`: no ERROR finding
    ERROR = 1  # a Hallmark error (unsupported or malformed file, configuration, ...); `keys doctor`: an ERROR
    USAGE = 2  # the command line is wrong: unknown command or option, missing or conflicting arguments
    VALID_UNTRUSTED = 3  # `verify`: intact credentials whose signer is on no configured trust profile
    INVALID = 4  # `verify`: credentials that do not validate (tampered, broken signature, ...)
    NONE = 5  # `verify`: the file carries no credentials
    # `verify URL`: not fetched because this configuration does not allow it (fetching off, an address or a
    # redirect not allowed, a file over the size limit): trying again will not help
    URL_REFUSED = 6
    # `verify URL`: the fetch failed (no connection, DNS, TLS, an HTTP error status, past the time limit):
    # trying again later may help
    URL_FAILED = 7


VERIFY_EXIT = {
    Outcome.TRUSTED: ExitCode.OK,
    Outcome.VALID_UNTRUSTED: ExitCode.VALID_UNTRUSTED,
    Outcome.INVALID: ExitCode.INVALID,
    Outcome.NONE: ExitCode.NONE,
}
