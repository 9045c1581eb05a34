"""Text normalisation before scoring: traditional -> simplified Chinese, full-width -> ASCII,
lower case, and the script test that routes a text to the Chinese or the English model.

Traditional characters are mapped one character at a time with OpenCC's ``TSCharacters``
table (Apache-2.0, shipped by the ``opencc-python-reimplemented`` package), the first
simplified candidate of each entry: a ``str.translate`` table, so normalising costs ~1 µs a
text. Phrase-level conversion (OpenCC's ``TSPhrases``) is not needed for character n-grams.

>>> normalize("退貨還沒有收到，非常失望！")
'退货还没有收到,非常失望!'
>>> normalize("ＡＢＣ　Refund")
'abc refund'
>>> is_chinese("The 客服 was rude"), is_chinese("Refund please")
(True, False)
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

__all__ = ["is_chinese", "normalize"]

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# CJK punctuation without a full-width ASCII twin.
_PUNCTUATION = {"。": ".", "、": ",", "「": '"', "」": '"', "『": '"', "』": '"', "…": "...",
                "～": "~", "　": " ", "【": "[", "】": "]", "《": '"', "》": '"', "﹏": "_",
                "—": "-", "–": "-", "’": "'", "‘": "'", "“": '"', "”": '"'}  # fmt: skip


@cache
def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    source = resources.files("opencc").joinpath("dictionary", "TSCharacters.txt")
    for line in source.read_text(encoding="utf-8").splitlines():
        traditional, _, simplified = line.partition("\t")
        if len(traditional) == 1 and simplified:
            table[ord(traditional)] = simplified.split()[0]
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII
        table[code] = chr(code - 0xFEE0)
    table.update({ord(k): v for k, v in _PUNCTUATION.items()})
    return table


def normalize(text: str) -> str:
    """``text`` in simplified characters, ASCII punctuation and lower case, spaces collapsed."""
    return " ".join(text.translate(_table()).lower().split())


def is_chinese(text: str) -> bool:
    """Whether ``text`` has a CJK ideograph (then the Chinese model scores it)."""
    return _CJK.search(text) is not None
