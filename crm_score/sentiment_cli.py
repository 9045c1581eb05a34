"""``crm-score sentiment FILE``: the ticket-sentiment model over a file of texts.

Input is JSONL whose objects have a string ``text``, or plain text, one text a line (a line
that does not start with ``{`` is plain text); ``-`` reads standard input. Empty lines are
skipped. Output is one JSON line per text, in input order: ``{"lang": "zh"|"en", "label":
"negative"|"neutral"|"positive", "score": P(positive) - P(negative)}``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import BinaryIO

import orjson
import typer

from crm_core.errors import CrmScoringError

__all__ = ["TextFileError", "read_texts", "sentiment_command", "write_sentiments"]

_CHUNK = 4096


class TextFileError(CrmScoringError):
    """A line of a text file is not a usable text (fix the file)."""


def read_texts(lines: Iterable[bytes], where: str) -> Iterator[str]:
    """The texts of JSONL or plain lines (``where`` names the source in errors)."""
    for number, raw in enumerate(lines, 1):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                text = orjson.loads(line).get("text")
            except orjson.JSONDecodeError as exc:
                raise TextFileError(f"{where}:{number}: not valid JSON ({exc})") from None
            if not isinstance(text, str):
                raise TextFileError(
                    f'{where}:{number}: a JSON line needs a string "text" field; '
                    "give plain text lines instead if the texts are not JSON"
                )
            yield text
        else:
            yield line


def write_sentiments(texts: Iterable[str], out: BinaryIO) -> int:
    """Score ``texts`` in chunks and write one JSON line each to ``out``; the count."""
    from scorers.sentiment import score_many

    count = 0
    it = iter(texts)
    while chunk := list(islice(it, _CHUNK)):
        out.write(b"".join(orjson.dumps(s._asdict()) + b"\n" for s in score_many(chunk)))
        count += len(chunk)
    out.flush()
    return count


def sentiment_command(
    file: str = typer.Argument(..., help="JSONL with a text field, or plain lines; - for stdin"),
) -> None:
    """Ticket sentiment (Chinese or English) of each text: one JSON line each, in order."""
    try:
        if file == "-":
            write_sentiments(read_texts(sys.stdin.buffer, "<stdin>"), sys.stdout.buffer)
            return
        try:
            with open(file, "rb") as handle:
                write_sentiments(read_texts(handle, file), sys.stdout.buffer)
        except OSError as exc:
            raise TextFileError(f"cannot read {file}: {exc.strerror}") from None
    except CrmScoringError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None
