"""All configuration, from `HALLMARK_*` environment variables. Built inside the app factory, never at import.

Guardrails: in production the service refuses development keys and trust, and refuses to run without trust
anchors. Every limit has a sane default.
"""

from __future__ import annotations

import os
import re
import stat
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_data_path
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.pkcs11 import pin_from
from app.url_policy import allow_entry_text, parse_allow_entry
from signing import DEFAULT_ALLOWED_SOURCE_TYPES, DEFAULT_MAX_IMAGE_PIXELS, ConfigError, expand_source_type

MiB = 1024 * 1024
GiB = 1024 * MiB
# An OCSP responder the engine may contact: host or IP, optional port, optional scheme, optional single
# leading wildcard label. The engine matches host AND port: `ocsp.example.com` does not allow
# `http://ocsp.example.com:8080/`.
_RESPONDER = re.compile(r"^(https?://)?(\*\.)?([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+(:[0-9]{1,5})?$")


def default_data_dir() -> Path:
    """The per-user data directory (~/.local/share/hallmark on Linux): the same wherever a command runs."""
    return user_data_path("hallmark", appauthor=False)


def default_max_concurrent_verifies(workers: int) -> int:
    """One verification at a time per core each of `workers` processes may use (at least one): the cores are
    those this process may run on (its CPU affinity, e.g. a container's cpuset), not all the machine has."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLMARK_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = Field(
        "development", description="`production` turns on the guardrails (no dev keys, no dev trust)."
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        validate_default=True,
        description="Keys, trust profiles and the SQLite database live here; default: the per-user data "
        "directory (~/.local/share/hallmark on Linux). Always made absolute.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file in the data dir."
    )
    keys_dir: Path | None = Field(None, description="Default: <data_dir>/keys.")
    signing_chain: Path | None = Field(
        None, description="PEM chain, leaf first. Default: <keys_dir>/signing-chain.pem"
    )
    signing_key: Path | None = Field(
        None, description="PKCS#8 PEM key, mode 0600. Default: <keys_dir>/signing-key.pem"
    )
    signing_key_id: str = Field("default", description="Name recorded in the ledger for the signing key.")
    signing_key_passphrase_file: Path | None = Field(None, description="File holding the key's passphrase.")
    pkcs11_module: Path | None = Field(
        None, description="PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)."
    )
    pkcs11_token_label: str | None = Field(None, description="Token that `keys generate --pkcs11` uses.")
    pkcs11_pin_file: Path | None = Field(None, description="File holding the token's user PIN (mode 0600).")
    pkcs11_pin_env: str | None = Field(None, description="Name of an environment variable holding the PIN.")
    trust_dir: Path | None = Field(
        None,
        description="Trust profiles (hallmark trust ...; also plain *.pem files). Default: <data_dir>/trust",
    )
    keyring_poll_seconds: float = Field(
        1.0, gt=0, description="How often a worker checks the keyring for a newly activated key."
    )
    trust_poll_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a worker checks the trust directory for changed profiles (`hallmark trust`).",
    )
    cert_expiry_warning_days: int = Field(30, ge=0, description="/readyz warns this many days before expiry.")
    default_provider: str = Field(
        "Hallmark", description="Provider named in the label when a request names none."
    )
    allowed_source_types: Annotated[frozenset[str], NoDecode] = Field(
        DEFAULT_ALLOWED_SOURCE_TYPES,
        description="Comma-separated IPTC digital source types (codes or URIs) a sign request may declare. "
        "Default: trainedAlgorithmicMedia and compositeWithTrainedAlgorithmicMedia, the types that name a "
        "trained model; setting it replaces that list.",
    )
    tsa_url: str | None = Field(None, description="RFC 3161 timestamp authority used when signing.")
    ocsp_responders: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated OCSP responders (host[:port]) verification may ask whether a signing "
        "certificate was revoked. Empty: revocation is not checked and verification never touches the "
        "network.",
    )
    tsa_deadline_seconds: float = Field(3.0, gt=0, le=30, description="Longest a sign waits for the TSA.")
    tsa_policy: Literal["require", "best_effort"] = Field(
        "require", description="TSA unusable: 503 + Retry-After (require), or sign without a timestamp."
    )
    tsa_breaker_failures: int = Field(
        3, ge=1, description="Consecutive TSA failures that pause timestamping."
    )
    tsa_breaker_open_seconds: float = Field(
        30.0, gt=0, description="Pause before a probe sign retries the TSA."
    )
    thumbnails: bool = Field(False, description="Embed a thumbnail (costs ~20x sign time and up to 1 MB).")
    max_upload_bytes: int = Field(200 * MiB, gt=0, description="Largest accepted request body.")
    max_image_pixels: int = Field(
        DEFAULT_MAX_IMAGE_PIXELS,
        gt=0,
        description="Largest image (width x height) sign decodes; larger ones get 413 before any decoding.",
    )
    soft_binding: bool = Field(
        True,
        description="Soft bindings for signed images: ISCC and PDQ fingerprints of the final pixels, "
        "declared in the manifest, and the watermark (see HALLMARK_WATERMARK). Off: neither; the manifest "
        "store is still kept in the repository.",
    )
    watermark: bool = Field(
        True,
        description="Mark signed JPEG, PNG and WebP images with the invisible watermark (needs a watermark "
        "key: `hallmark watermark rotate`; development creates one). Off: images are signed without it.",
    )
    watermark_keyring: Path | None = Field(
        None, description="Watermark keyring (mode 0600). Default: <keys_dir>/watermark-keys.json"
    )
    soft_binding_max_pixels: int = Field(
        24_000_000,
        gt=0,
        description="Largest image (width x height) that sign watermarks and fingerprints and that verify "
        "searches for a watermark or fingerprint; larger ones are signed or verified without.",
    )
    png_compress_level: int = Field(
        1,
        ge=0,
        le=9,
        description="zlib level for watermarked PNG outputs (lossless at every level): 1 writes a 1 MP photo "
        "in ~90 ms and ~15 % larger than level 6, which takes ~360 ms.",
    )
    recovery: bool = Field(
        True,
        description="When a file has no manifest or its manifest no longer matches, verify looks for the "
        "watermark and fingerprints and recovers the original credentials from the manifest repository.",
    )
    sbr_public: bool = Field(
        True,
        description="The C2PA Soft Binding Resolution API (/sbr/v1) answers anyone (under the public rate "
        "limits). Off: its query and manifest routes need an API key with the `resolve` scope.",
    )
    sbr_max_matches: int = Field(
        10, ge=1, le=100, description="Most manifest ids one Soft Binding Resolution query returns."
    )
    max_inflight_bytes: int = Field(
        1024 * MiB, gt=0, description="Bytes of uploads processed at once per worker."
    )
    body_min_rate_bytes: int = Field(
        1024,
        ge=0,
        description="Slowest average rate (bytes per second since the request began, once the grace period "
        "has passed) at which a request body must arrive; slower: 408 and the connection closed. 0: no rate.",
    )
    body_rate_grace_seconds: float = Field(
        10.0, ge=0, description="Seconds a request body may take before its average rate is checked."
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest wait for the next piece of a request body (408 after it)."
    )
    head_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="`hallmark serve` closes a connection whose request line and headers have not all "
        "arrived this long after it opened (or after its previous response).",
    )
    shutdown_grace_seconds: int = Field(
        20,
        ge=1,
        description="On SIGTERM, `hallmark serve` stops accepting and lets requests in progress finish for "
        "this long, then cuts them and exits.",
    )
    worker_healthcheck_seconds: int = Field(
        30,
        ge=1,
        le=600,
        description="With `hallmark serve --workers` above 1: how long uvicorn's supervisor waits for a "
        "worker to answer its health check before killing and replacing it (uvicorn's own 5 s killed workers "
        "that were still starting, or busy, on a loaded 2-core machine).",
    )
    temp_sweep_age_seconds: float = Field(
        3600.0,
        ge=0,
        description="At start, remove Hallmark's temporary files and directories (uploads, signed outputs, "
        "media tool folders, metrics directories) left by processes that no longer run and last modified "
        "longer ago than this; 0: no sweep.",
    )
    spool_memory_bytes: int = Field(8 * MiB, ge=0, description="Outputs larger than this spool to disk.")
    api_key_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="Remember a valid API key this long; a revocation from the CLI waits this long.",
    )
    idempotency_ttl_seconds: float = Field(
        86400.0,
        gt=0,
        description="How long the result of a sign with an Idempotency-Key is kept for retries (then the key "
        "may be used afresh).",
    )
    idempotency_lease_seconds: float = Field(
        60.0,
        gt=0,
        description="A sign holding an Idempotency-Key keeps it this long; a retry meanwhile gets 409. If "
        "its process dies, a retry after this long signs afresh. Keep it above your longest sign.",
    )
    idempotency_max_result_bytes: int = Field(
        64 * MiB,
        gt=0,
        description="Largest signed result kept for an Idempotency-Key (in the database); a larger one is "
        "refused (413) and nothing is recorded.",
    )
    audit_seal_interval_seconds: float = Field(
        30.0,
        ge=0,
        description="How often each worker links new ledger rows into the audit chain and signs a checkpoint "
        "(0: never in the service; run `hallmark audit seal`).",
    )
    audit_intent_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="A sign's intent still open this long after its sign's deadline (the decode worker's, or "
        "the job's) is reported by `hallmark audit verify` as a signature attempted but never committed "
        "(the process died between the engine and the ledger commit).",
    )
    audit_intent_retention_days: float = Field(
        30.0,
        ge=0,
        description="Completed and abandoned sign intents are deleted this many days after their sign's "
        "deadline (each worker prunes at start and then hourly, in small batches; `hallmark audit "
        "prune-intents` does it at once). Open intents are never deleted. 0: keep every intent.",
    )
    audit_timestamps: bool = Field(
        True,
        description="With HALLMARK_TSA_URL set, have each new audit checkpoint timestamped by the TSA "
        "(RFC 3161), so the ledger's state is provably as old as its token.",
    )
    verify_requires_key: bool = Field(False, description="Require an API key (any scope) for /v1/verify.")
    log_level: str = Field("info", description="Python log level name.")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="`json`: one JSON object per line on stderr (time, level, logger, message, pid, and for "
        "requests request_id, method, path, status, duration_ms); `text`: plain lines. "
        "`hallmark serve --dev` uses text unless this is set.",
    )
    public_rate_limit: int = Field(
        60,
        ge=0,
        description="Requests per minute per client to POST /v1/verify, POST /v1/feedback and, while public, "
        "the Soft Binding Resolution API (per worker process); 0 turns the limit off.",
    )
    workers: int = Field(
        1,
        ge=1,
        description="Worker processes serving the API (uvicorn's --workers): `hallmark serve --workers` sets "
        "it for its workers, and `hallmark serve` without --workers starts this many. Started another way "
        "(`uvicorn ... --workers N`), set it to N: it divides the cores among the workers.",
    )
    # One verification at a time per core a worker may use: with more, under a flood the admitted ones share
    # the cores and wait for each other (bench/verify_load: p99 18.7x unloaded with one per worker on 2 cores
    # and 2 workers, 88.8x with two). Declared after `workers`, whose validated value the default reads.
    max_concurrent_verifies: int = Field(
        default_factory=lambda data: default_max_concurrent_verifies(data["workers"]),
        ge=1,
        description="Verifications (upload, URL, Soft Binding Resolution by content) examined at once per "
        "worker process; the engine is CPU-bound, so about one per core the worker may use. Unset: the cores "
        "this process may use (its CPU affinity) divided by HALLMARK_WORKERS, at least 1.",
    )
    verify_queue: int = Field(
        1, ge=0, description="Verifications that may wait for a slot per worker; beyond them 503 at once."
    )
    verify_queue_seconds: float = Field(
        5.0, gt=0, description="Longest wait for a verification slot (503 + Retry-After after it)."
    )
    verify_max_retry_after: int = Field(
        30,
        ge=1,
        description="Longest Retry-After (seconds) given to a verification refused because every slot was "
        "taken; each refused request gets the next place in a queue served at the measured "
        "verification rate.",
    )
    public_max_concurrent_per_client: int = Field(
        4, ge=0, description="Requests per client in progress at once on the public endpoints; 0: no cap."
    )
    rate_limit_max_clients: int = Field(
        10_000, gt=0, description="Clients whose rate a worker remembers (least recently seen forgotten)."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For names the client. "
        "Empty: the client is the peer address and the header is ignored.",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) `hallmark serve` reads.",
    )
    max_headers: int = Field(100, gt=0, description="Most request headers accepted (more: 431).")
    fpcalc_path: str = Field(
        "fpcalc", description="Chromaprint's fpcalc, for ISCC audio codes: a path, or a name on PATH."
    )
    ffmpeg_path: str = Field(
        "ffmpeg", description="ffmpeg, for ISCC video codes: a path, or a name looked up on PATH."
    )
    media_fingerprint_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Longest one fpcalc or ffmpeg run may take (wall clock, and as many CPU seconds); "
        "past it the file is signed without an audio/video code.",
    )
    media_fingerprint_memory_bytes: int = Field(
        2048 * MiB, ge=64 * MiB, description="Address space one fpcalc or ffmpeg run may use."
    )
    url_fetch: bool = Field(
        False,
        description='Let POST /v1/verify fetch the file from a URL (JSON body {"url": ...}). Off: '
        "verification makes no network request for a URL and answers 403 url-fetch-disabled.",
    )
    url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host[:port] that verify-by-URL may fetch from even when they resolve "
        "to loopback, private or other non-public addresses (without a port: any port). A redirect from "
        "one of them to a host not listed is refused.",
    )
    url_fetch_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a URL fetch may take in all: name resolution, connecting, every redirect and "
        "the whole body.",
    )
    url_max_redirects: int = Field(
        5, ge=0, le=20, description="Redirects a URL fetch follows, each checked like the first URL."
    )

    # --- the job API for large files (POST /v1/jobs; app/jobs/) ---
    job_max_upload_bytes: int = Field(
        4 * GiB, gt=0, description="Largest file accepted by POST /v1/jobs (streamed to disk, not memory)."
    )
    job_result_ttl_seconds: float = Field(
        86400.0,
        gt=0,
        description="How long a job's upload and signed result are kept (from creation, and again from "
        "completion); then a sweep deletes the files and marks the job expired.",
    )
    job_max_queued_per_key: int = Field(
        10, ge=1, description="Jobs one API key may have queued or running at once; more: 429."
    )
    job_workers: int = Field(
        1,
        ge=0,
        le=16,
        description="Jobs this service process signs at once (threads, each with an isolated worker). 0: "
        "this process runs no jobs (another process sharing the database does).",
    )
    job_deadline_seconds: float = Field(
        3600.0, gt=0, description="Wall-clock time one job's sign may take in its worker; then it fails."
    )
    job_cpu_seconds: int = Field(
        1800, ge=1, description="CPU time one job's sign may take in its worker (RLIMIT_CPU)."
    )
    job_sweep_seconds: float = Field(
        60.0, gt=0, description="How often expired jobs are swept and stalled ones requeued."
    )
    job_queue: Literal["auto", "in-process", "procrastinate"] = Field(
        "auto",
        description="Who runs jobs: `in-process` threads polling the jobs table, or Procrastinate "
        "(PostgreSQL only; the job is deferred in the transaction that inserts its row). auto: "
        "Procrastinate on PostgreSQL, in-process on SQLite.",
    )
    webhooks: bool = Field(
        False,
        description="Let jobs name a webhook_url that is POSTed the job's final state (off: the field is "
        "refused and no job makes a network request). Destinations pass the URL-fetch policy: public "
        "addresses only, or hosts in HALLMARK_URL_ALLOWLIST.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key for the Hallmark-Signature header of webhooks (required with "
        "HALLMARK_WEBHOOKS=true; at least 32 characters).",
    )
    webhook_timeout: float = Field(10.0, gt=0, le=60, description="Seconds one webhook delivery may take.")
    webhook_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description="Attempts at delivering one webhook in all; a connection error, a timeout, a 5xx or a "
        "429 is tried again (another 4xx, or a destination the URL policy refuses, is not).",
    )
    webhook_retry_base_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Wait before a webhook's second attempt; doubled before each further one (exponential "
        "backoff). A 429's or 503's Retry-After is honoured instead.",
    )
    webhook_retry_max_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="The longest wait between two webhook attempts: caps the backoff and a receiver's "
        "Retry-After.",
    )

    isolation_workers: int = Field(
        2,
        ge=0,
        le=64,
        description="Worker processes that decode untrusted files (verify, recovery, byContent, sign) with "
        "the limits below; started on first use. 0 decodes inside the service process (no isolation).",
    )
    isolation_memory_bytes: int = Field(
        2 * GiB,
        ge=256 * MiB,
        description="Address space of each decode worker (RLIMIT_AS), including what its modules map.",
    )
    isolation_cpu_seconds: int = Field(
        20, ge=1, le=3600, description="CPU time one file may take in a decode worker (RLIMIT_CPU; then 422)."
    )
    verify_deadline_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Wall-clock time one file may take in a decode worker; then it is killed (503).",
    )
    isolation_max_jobs: int = Field(
        1000, ge=1, description="A decode worker is replaced after this many files (bounds slow leaks)."
    )
    prescan_max_boxes: int = Field(
        20_000, ge=1, description="Most ISO BMFF boxes (all levels) in an MP4/MOV/HEIF file; more: 422."
    )
    prescan_max_depth: int = Field(
        32, ge=1, le=200, description="Deepest nesting of ISO BMFF boxes or RIFF lists; deeper: 422."
    )
    prescan_max_chunks: int = Field(
        20_000, ge=1, description="Most PNG or RIFF (WAV, WebP) chunks; more: 422."
    )
    prescan_max_segments: int = Field(5_000, ge=1, description="Most JPEG marker segments; more: 422.")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # A relative path would mean another directory for every working directory (and workers started
        # elsewhere): resolve it once, against where the command started.
        return value.expanduser().absolute()

    @field_validator("tsa_url")
    @classmethod
    def _tsa_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("tsa_url must be an http(s) URL")
        return value or None

    @field_validator("allowed_source_types", mode="before")
    @classmethod
    def _source_types(cls, value: object) -> object:
        """Codes or URIs of the IPTC vocabulary, as full URIs; an unknown one stops the start-up."""
        parts = [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value
        if not isinstance(parts, list | tuple | set | frozenset):
            return value
        uris = set()
        for part in parts:
            uri = expand_source_type(str(part))
            if uri is None:
                raise ValueError(f"allowed_source_types: {part!r} is not an IPTC digital source type")
            uris.add(uri)
        if not uris:
            raise ValueError("allowed_source_types: name at least one IPTC digital source type")
        return frozenset(uris)

    @field_validator("trusted_proxies", "url_allowlist", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {entry!r} is not an IP address or CIDR") from None
        return value

    @field_validator("url_allowlist")
    @classmethod
    def _allow_entries(cls, value: list[str]) -> list[str]:
        """Each entry normalised (lower-case, IPv6 bracketed) so that the fetcher compares like with like."""
        try:
            return list(dict.fromkeys(allow_entry_text(*parse_allow_entry(e)) for e in value))
        except ValueError as exc:
            raise ValueError(f"url_allowlist: {exc} (no scheme, no path)") from None

    @field_validator("ocsp_responders", mode="before")
    @classmethod
    def _responder_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ocsp_responders")
    @classmethod
    def _responder_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not _RESPONDER.match(host):
                raise ValueError(f"ocsp_responders: {host!r} is not a host[:port] (no paths, no bare '*')")
        return list(dict.fromkeys(value))

    # Derived paths: one place that knows the layout of the data directory.
    @property
    def resolved_keys_dir(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def resolved_signing_chain(self) -> Path:
        return self.signing_chain or self.resolved_keys_dir / "signing-chain.pem"

    @property
    def resolved_signing_key(self) -> Path:
        return self.signing_key or self.resolved_keys_dir / "signing-key.pem"

    @property
    def resolved_watermark_keyring(self) -> Path:
        return self.watermark_keyring or self.resolved_keys_dir / "watermark-keys.json"

    @property
    def resolved_trust_dir(self) -> Path:
        return self.trust_dir or self.data_dir / "trust"

    @property
    def dev_ca_dir(self) -> Path:
        return self.resolved_keys_dir / "dev-ca"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'hallmark.db'}"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def passphrase(self) -> SecretStr | None:
        """The signing key's passphrase, from a file only its owner can read; never logged.

        Held to the same rules as the PIN file (`pin_from`): it exists, is owner-only (0600), is UTF-8 and is
        not empty. Errors name the file, never its content.
        """
        file = self.signing_key_passphrase_file
        if file is None:
            return None
        try:
            fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hang the caller
        except FileNotFoundError:
            raise ConfigError(
                f"The passphrase file {file} does not exist.",
                hint="Check HALLMARK_SIGNING_KEY_PASSPHRASE_FILE.",
            ) from None
        except OSError as exc:
            raise ConfigError(f"The passphrase file {file} cannot be opened ({exc.strerror}).") from None
        with os.fdopen(fd, "rb") as fh:
            info = os.fstat(fh.fileno())  # the file that is read, not whatever the path names a moment later
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"The passphrase file {file} is not a regular file.")
            mode = stat.S_IMODE(info.st_mode)
            if os.name == "posix" and mode & 0o077:
                raise ConfigError(
                    f"The passphrase file {file} is readable by other users (mode {mode:o}).",
                    hint=f"chmod 600 {file}",
                )
            try:
                text = fh.read().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                raise ConfigError(f"The passphrase file {file} could not be read as UTF-8 text.") from None
        secret = text.strip()
        if not secret:
            raise ConfigError(f"The passphrase file {file} is empty.", hint="Put the key's passphrase there.")
        return SecretStr(secret)

    def pkcs11_pin(self) -> str:
        """The token PIN, from the configured file or environment variable; never logged."""
        return pin_from(self.pkcs11_pin_file, self.pkcs11_pin_env, os.environ)
