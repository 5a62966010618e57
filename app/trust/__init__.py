"""The operator side of trust profiles (`hallmark trust ...`): where the published lists are (`sources`),
getting a bundle and checking its pinned hash (`bundles`), a profile's bookkeeping (`profiles`) and the trust
directory itself (`store`). Network access happens only in `fetch_bundle`, never at verify time."""

from app.trust.bundles import Bundle, check_sha256, fetch_bundle, normalise_sha256
from app.trust.directory import load_profile_dir, load_trust_dir
from app.trust.profiles import check_name
from app.trust.sources import DEFAULT_SOURCES, DefaultSource, Kind
from app.trust.store import TrustStore

__all__ = [
    "DEFAULT_SOURCES",
    "Bundle",
    "DefaultSource",
    "Kind",
    "TrustStore",
    "check_name",
    "check_sha256",
    "fetch_bundle",
    "load_profile_dir",
    "load_trust_dir",
    "normalise_sha256",
]
