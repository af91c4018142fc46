"""Names from model files made safe for generated code: C identifiers (symbol prefixes, file
names) and comment text."""
from __future__ import annotations

import re

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch typedef
union unsigned void volatile while _Bool _Complex _Imaginary main""".split())


def c_identifier(name: str) -> str:
    """A safe, lower-case C identifier from any model or tensor name."""
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", name).strip("_").lower() or "model"
    ident = re.sub(r"_+", "_", ident)
    if ident[0].isdigit() or ident in C_KEYWORDS:
        ident = "m_" + ident
    return ident[:48]


def c_comment(text: str) -> str:
    """Text safe inside a /* */ comment: printable ASCII, no comment delimiters, no trigraphs."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text.replace("*/", "* /").replace("/*", "/ *").replace("??", "? ?").replace("\\", "/")
