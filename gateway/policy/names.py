"""Reading client names and software ids the way a person on a consent screen would.

``client_name`` is chosen by the caller and shown to users.  Three rules follow:

* **Hidden characters are refused, not cleaned.**  A name containing a character that
  renders as nothing (any Default_Ignorable_Code_Point: zero-width characters, the
  combining grapheme joiner, variation selectors, Hangul fillers, ...), a bidirectional
  control (a right-to-left override makes ``iaedualc`` display as ``claudeai``) or a control
  character shows the user something other than what was registered
  (``client_name.hidden_characters``).  Unassigned and private-use code points render as
  whatever a font makes of them, and over-long names are refused too
  (``client_name.invalid``).
* **Names are compared by identity key** (:func:`gateway.unicode.confusables.identity_key`):
  NFKC, the UTS #39 confusable skeleton, case folding.  ``Curs\\u2c9fr`` is ``Cursor``.
* **A protected identity is claimed by a whole word.**  A managed entry's ``name``, its
  ``vendor`` and the ``client_names`` it sends are protected.  A client name claims one when
  a run of its whole words, joined, equals the identity's words joined: ``Claude Desktop``,
  ``Anthropic Claude``, ``Claude-Code (server)``, ``Chat GPT`` and ``ChatGPT`` all claim;
  ``MyChatGPT`` and ``Claudette`` do not.  A shorter claim inside a longer one counts only
  as the longer (``Claude Code (x)`` claims Claude Code, not Claude).  The trade-off: any
  application whose name contains a protected word (``Google Drive sync`` contains the
  vendor ``Google``) must bring that vendor's redirect URIs, or the policy must list the
  word in ``client.client_name.unprotected``.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.unicode.confusables import identity_keys
from gateway.unicode.ignorable import first_default_ignorable

#: Longest client name accepted; real names are a few dozen characters.
MAX_NAME_LENGTH = 256
#: Longest software_id accepted (RFC 7591 §2 sets none; real ones are UUIDs or short ids).
MAX_SOFTWARE_ID_LENGTH = 255

_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
#: Controls (Cc), line and paragraph separators (Zl, Zp) and bidirectional controls; the
#: bidi controls are default-ignorable too, except U+061C's neighbours in older versions.
_CONTROLS_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + "".join(sorted(_BIDI_CONTROLS)) + "]")
_SOFTWARE_ID_RE = re.compile(rf"[\x21-\x7e]{{1,{MAX_SOFTWARE_ID_LENGTH}}}")


def hidden_character(name: str) -> str | None:
    """A phrase naming the first character of ``name`` that hides what it says, if any."""
    index = first_default_ignorable(name)
    if index is not None:
        return f"the invisible character {_char(name[index])} at position {index}"
    found = _CONTROLS_RE.search(name)
    if found is None:
        return None
    char = found.group()
    what = "bidirectional control" if char in _BIDI_CONTROLS else "control character"
    return f"the {what} {_char(char)} at position {found.start()}"


def invalid_name(name: str) -> str | None:
    """Why ``name`` cannot be a client name at all (length, unassigned or private-use
    code points), or ``None``."""
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are accepted"
    if not name.strip():
        return "is empty: a consent screen would show no name at all"
    if name.isascii() or name.isprintable():  # unassigned and private-use are not printable
        return None
    for index, char in enumerate(name):
        category = unicodedata.category(char)
        if category in ("Co", "Cn", "Cs"):
            what = "a private-use" if category == "Co" else "an unassigned"
            return f"has {what} code point {_char(char)} at position {index}"
    return None


def invalid_software_id(value: str) -> str | None:
    """RFC 7591 §2 leaves software_id's form open; the gateway compares it byte for byte,
    so it must be printable ASCII without spaces: a zero-width space, a soft hyphen,
    fullwidth digits or Cyrillic letters would otherwise make a look-alike of a listed id."""
    if _SOFTWARE_ID_RE.fullmatch(value):
        return None
    if not value:
        return "is empty"
    if len(value) > MAX_SOFTWARE_ID_LENGTH:
        return f"is longer than {MAX_SOFTWARE_ID_LENGTH} characters"
    bad = next(c for c in value if not ("\x21" <= c <= "\x7e"))
    return f"contains {_char(bad)}; it must be printable ASCII without spaces"


def software_id_key(value: str) -> str:
    """How software ids compare: exactly, except that a UUID compares case-insensitively
    (RFC 9562 §4: the hex digits are case-insensitive on input)."""
    try:
        return str(uuid.UUID(value)) if len(value) == 36 else value
    except ValueError:
        return value


_WORD_RE = re.compile(r"[^\W_]+")


def words(key: str) -> list[str]:
    """The whole words of an identity key: runs of letters and digits, after composing
    (NFC) what the skeleton decomposed, so an accent stays inside its word.  A mark that
    composes with nothing separates words: ``c\u0337laude`` (a slashed c) reads as the
    words ``c`` and ``laude``, whose join claims Claude, which errs on the safe side."""
    return _WORD_RE.findall(unicodedata.normalize("NFC", key))


def claim_keys(identity: str) -> frozenset[str]:
    """The keys an identity is protected under: its words, joined, for each identity key."""
    return frozenset(key for k in identity_keys(identity) if (key := "".join(words(k))))


@dataclass(frozen=True, slots=True)
class Claim:
    """One protected identity a name claims: its key, and the words it spans."""

    key: str
    first: int
    last: int


def prefixes(keys: Iterable[str]) -> frozenset[str]:
    """Every non-empty prefix of every key: a run of words whose join is not one of these
    can never grow into a claim, so the scan stops there."""
    return frozenset(key[:end] for key in keys for end in range(1, len(key) + 1))


def claims(name: str, protected: Mapping[str, object], starts: frozenset[str]) -> list[Claim]:
    """The protected identities ``name`` claims as whole words, a claim inside a longer
    claim dropped.  ``protected`` is keyed by :func:`claim_keys`; ``starts`` holds their
    :func:`prefixes`, which end each scan early, so the cost is linear in the name."""
    found: dict[str, Claim] = {}
    for key in identity_keys(name):
        tokens = words(key)
        count = len(tokens)
        # Starts ascending, and at each start the longest claim first: a claim lies inside
        # a longer one exactly when an earlier one reaches at least as far (one pass).
        reach = -1
        for first in range(count):
            joined = tokens[first]
            if joined not in starts:
                continue
            here: list[tuple[str, int]] = []
            last = first
            while True:
                if joined in protected:
                    here.append((joined, last))
                last += 1
                if last == count:
                    break
                joined += tokens[last]
                if joined not in starts:
                    break
            for claimed, end in reversed(here):
                if end > reach and claimed not in found:
                    found[claimed] = Claim(claimed, first, end)
                reach = max(reach, end)
    return list(found.values())


def localized_names(metadata: Mapping[str, object]) -> Iterable[str]:
    """``client_name`` and every language-tagged ``client_name#...`` (RFC 7591 §2.2)."""
    for key, value in metadata.items():
        if (key == "client_name" or key.startswith("client_name#")) and isinstance(value, str):
            yield value


def compile_name_glob(pattern: str) -> tuple[re.Pattern[str], ...]:
    """A glob (``*``, ``?``, ``[...]``) matched against a name's whole identity keys; the
    literal parts of the pattern are keyed the same way (each key order), so ``*admin*``
    catches ``Adm\\u0269n console`` (U+0269 LATIN SMALL LETTER IOTA) and ``ADMIN``."""
    pieces = [p for p in re.split(r"(\*|\?|\[[^\]]*\])", pattern) if p]
    out = []
    for variant in (0, 1):
        keyed = "".join(
            piece if piece in ("*", "?") or piece.startswith("[") else _key_variant(piece, variant)
            for piece in pieces
        )
        out.append(re.compile(fnmatch.translate(keyed), re.DOTALL))
    return tuple(dict.fromkeys(out))


def name_matches(globs: tuple[re.Pattern[str], ...], name: str) -> bool:
    """Whether any identity key of ``name`` matches any compiled form of a glob."""
    keys = identity_keys(name)
    return any(glob.fullmatch(key) for glob in globs for key in keys)


def _key_variant(text: str, variant: int) -> str:
    """One of the identity keys of a glob's literal piece, keeping its outer spaces."""
    keys = identity_keys(text)
    key = keys[min(variant, len(keys) - 1)]
    lead = " " if text[:1].isspace() and key else ""
    trail = " " if text[-1:].isspace() and key else ""
    return lead + key + trail


def _char(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}{' ' + name if name else ''}"
