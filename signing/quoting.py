"""Text from a file (signer names, model names, URLs, titles) made safe to quote inside a report sentence.

A name is attacker-controlled: control and format characters (bidi overrides and isolates, directional
marks, zero-width characters), line and paragraph separators could reorder or hide the sentence around it,
and a look-alike quotation mark could close Hallmark's quotes and make the rest read as Hallmark's words.
The structured fields keep the raw value (JSON escapes it); only sentences use these.
"""

from __future__ import annotations

import unicodedata

# Characters that read as a double quotation mark: each becomes an apostrophe inside our quotes.
LOOKALIKE_QUOTES = frozenset(
    '"\u00ab\u00bb\u02ba\u02dd\u02ee\u201c\u201d\u201e\u201f\u2033\u2036\u2039\u203a\u275d\u275e'
    "\u2e42\u301d\u301e\u301f\uff02"
)
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def neutral_text(value: str) -> str:
    """`value` without control, format, bidi, zero-width or separator characters; any other space is a plain
    space and every look-alike double quotation mark an apostrophe."""
    out: list[str] = []
    for ch in value:
        category = unicodedata.category(ch)
        if category in _REMOVED_CATEGORIES:
            continue
        if ch in LOOKALIKE_QUOTES:
            out.append("'")
        elif category == "Zs":
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def quoted(value: str, limit: int = 80) -> str:
    """A value the file supplied, shown as a quotation: never read as Hallmark's own words."""
    clean = neutral_text(value)
    if len(clean) > limit:
        clean = clean[: limit - 1] + "\u2026"
    return '"' + clean + '"'
