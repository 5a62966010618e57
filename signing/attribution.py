"""Which manifest each validation status is about: the active manifest's own, or an ingredient's.

The engine lists some statuses of ingredient manifests (a parent's CAWG identity, say) among the active
manifest's and lets them change its overall state. A status names its manifest in its URL; the report
judges the active manifest by its own statuses and gives an ingredient's problems to that ingredient.
"""

from __future__ import annotations

import re
from typing import Any

from signing.jsonshape import as_dict, as_list, as_str
from signing.models import Codes, Ingredient, StatusCode

# A status URL names the manifest it is about: `self#jumbf=/c2pa/<label>/...`. A relative URL
# (`self#jumbf=c2pa.assertions/...`) or none is about the manifest being validated.
_URL_MANIFEST = re.compile(r"^self#jumbf=/?c2pa/([^/]+)")
# The only failure a signer's credential may have while the manifest still validates.
_UNTRUSTED = "signingCredential.untrusted"


def _url_manifest(url: str) -> str | None:
    match = _URL_MANIFEST.match(url)
    return match.group(1) if match else None


def split_codes(codes: Codes, ancestors: set[str]) -> tuple[Codes, dict[str, list[str]]]:
    """The active manifest's own codes, and the failure codes about its ingredients' manifests (by label).
    A code about a manifest that is not an ingredient's stays the active manifest's: nothing is dropped."""
    foreign: dict[str, list[str]] = {}

    def own(items: tuple[StatusCode, ...], failures: bool) -> tuple[StatusCode, ...]:
        kept = []
        for c in items:
            label = _url_manifest(c.url)
            if label is None or label not in ancestors:
                kept.append(c)
            elif failures:
                foreign.setdefault(label, []).append(c.code)
        return tuple(kept)

    split = Codes(own(codes.success, False), own(codes.informational, False), own(codes.failure, True))
    return split, foreign


def own_state(engine_state: str | None, own: Codes, foreign: dict[str, list[str]]) -> str | None:
    """The validation state of the active manifest alone.

    The engine's state counts every failure it listed, an ingredient's included. When some of those are
    about another manifest, the state is re-derived from the active manifest's own codes with the engine's
    rules: any failure but an untrusted credential is Invalid; a credential the engine trusted is Trusted.
    """
    if not foreign or engine_state not in ("Valid", "Invalid"):
        return engine_state
    if any(c.code != _UNTRUSTED for c in own.failure):
        return "Invalid"
    if not own.failure and any(c.code == "signingCredential.trusted" for c in own.success):
        return "Trusted"
    return "Valid"


def ingredients(
    manifest: dict[str, Any],
    manifests: dict[str, Any],
    foreign: dict[str, list[str]],
    deltas: list[Any],
) -> tuple[Ingredient, ...]:
    """The active manifest's ingredients, each with its own failures: those the engine recorded in it,
    those of its ingredient delta, and those listed with the active manifest's codes that are about the
    ingredient's manifest or one of its ancestors."""
    items = [i for i in as_list(manifest.get("ingredients")) if isinstance(i, dict)]
    delta_failures: dict[str, list[str]] = {}
    for delta in deltas:
        uri = as_str(as_dict(delta).get("ingredientAssertionURI")) or ""
        failed = as_list(as_dict(as_dict(delta).get("validationDeltas")).get("failure"))
        label = uri.rsplit("/", 1)[-1]
        delta_failures.setdefault(label, []).extend(
            str(f.get("code")) for f in failed if isinstance(f, dict) and isinstance(f.get("code"), str)
        )
    out = []
    for item in items:
        failures = [
            str(f.get("code"))
            for f in as_list(
                as_dict(as_dict(item.get("validation_results")).get("activeManifest")).get("failure")
            )
            if isinstance(f, dict)
        ]
        failures += delta_failures.get(as_str(item.get("label")) or "", [])
        for label in lineage(as_str(item.get("active_manifest")), manifests):
            failures += foreign.get(label, [])
        out.append(
            Ingredient(
                title=as_str(item.get("title")),
                format=as_str(item.get("format")),
                relationship=as_str(item.get("relationship")),
                manifest_id=as_str(item.get("active_manifest")),
                validation_failures=tuple(dict.fromkeys(failures)),
            )
        )
    return tuple(out)


def lineage(label: str | None, manifests: dict[str, Any]) -> list[str]:
    """`label` and the labels of every manifest it has as an ingredient, recursively (each once)."""
    seen: list[str] = []
    todo = [label] if label else []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        for item in as_list(as_dict(manifests.get(current)).get("ingredients")):
            parent = as_str(as_dict(item).get("active_manifest"))
            if parent is not None:
                todo.append(parent)
    return seen
