"""Make kept/probe/fonts/KeptCJKSans-GB2312.otf: the Chinese glyphs kept's plots fall back to.

    .venv/bin/python kg_data/recipes/make_cjk_font.py NotoSansCJKsc-Regular.otf
    # = --out kept/probe/fonts/KeptCJKSans-GB2312.otf

A fresh machine often has no CJK font, and matplotlib then draws Chinese relation labels as boxes.
kept ships a subset of **Noto Sans CJK SC Regular** (Adobe / Google, SIL Open Font License 1.1; the
source file is the one in the noto-cjk releases, also in Debian's ``fonts-noto-cjk`` as part of a
.ttc and in the ``mplfonts`` wheel on PyPI as ``mplfonts/fonts/NotoSansCJKsc-Regular.otf``, md5
``cca5efc0e02fb1bf62349bd68ef30fc1`` for version 1.004). Kept: printable ASCII, every character of
GB 2312 (6,763 hanzi and its symbols: the characters of simplified Chinese in everyday use), CJK
punctuation and the full-width forms; no OpenType layout features, no hinting. The family is
renamed "Kept CJK Sans" (a modified version under the OFL; the licence asks that the Reserved Font
Name "Source" not be used, and it is not). The result is about 1.6 MB. fontTools (a matplotlib
dependency) does the subsetting; its output for the same source and version is byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

FAMILY = "Kept CJK Sans"


def characters() -> set[int]:
    """The code points kept: ASCII 0x20-0x7E, all of GB 2312, CJK punctuation, full-width forms."""
    chars = set(range(0x20, 0x7F))
    for first in range(0xA1, 0xF8):
        for second in range(0xA1, 0xFF):
            try:
                chars.update(map(ord, bytes([first, second]).decode("gb2312")))
            except UnicodeDecodeError:
                pass
    return chars | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="NotoSansCJKsc-Regular.otf")
    p.add_argument("--out", type=Path, default=Path("kept/probe/fonts/KeptCJKSans-GB2312.otf"))
    args = p.parse_args()
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features, options.hinting, options.name_IDs = [], False, ["*"]
    font = TTFont(args.source, recalcTimestamp=False)  # the source's dates: the same bytes every run
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=characters())
    subsetter.subset(font)
    names = font["name"]
    for record in list(names.names):
        if record.nameID in (1, 16):
            names.setName(FAMILY, record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID in (3, 4, 18):
            names.setName(f"{FAMILY} Regular", record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID == 6:
            names.setName("KeptCJKSans-Regular", 6, record.platformID, record.platEncID, record.langID)
        elif record.nameID == 17:
            names.setName("Regular", 17, record.platformID, record.platEncID, record.langID)
    font["CFF "].cff.fontNames = ["KeptCJKSans-Regular"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    font.save(tmp)
    tmp.replace(args.out)
    print(f"{args.out}: {args.out.stat().st_size:,} bytes, {len(font.getGlyphOrder()):,} glyphs, "
          f"md5 {hashlib.md5(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
