"""``crm-score sentiment FILE``: JSONL or plain lines in, one JSON line per text out, in order."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crm_score.cli import app
from scorers.sentiment import score_many

TEXTS = ["物流太慢了，很失望", "Where is my parcel?", "Thanks, great service!",
         "請問可以開發票嗎？", "质量不错 👍", "The box arrived crushed."]  # fmt: skip


def _run(args: list[str], stdin: str | None = None) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(app, ["sentiment", *args], input=stdin)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines, result.stderr


def _expected(texts: list[str]) -> list[dict[str, object]]:
    return [s._asdict() for s in score_many(texts)]


def test_jsonl_file_gives_one_line_per_text_in_order(tmp_path: Path) -> None:
    path = tmp_path / "tickets.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    code, lines, _ = _run([str(path)])
    assert code == 0
    assert lines == _expected(TEXTS)
    assert [line["lang"] for line in lines] == ["zh", "en", "en", "zh", "zh", "en"]
    for line in lines:
        assert set(line) == {"lang", "label", "score"}
        assert line["label"] in ("negative", "neutral", "positive")
        assert isinstance(line["score"], float) and -1.0 <= line["score"] <= 1.0


def test_plain_lines_from_stdin_skip_empty_lines() -> None:
    code, lines, _ = _run(["-"], stdin="\n".join([TEXTS[0], "", *TEXTS[1:]]) + "\n")
    assert code == 0 and lines == _expected(TEXTS)


def test_mixed_plain_and_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_text(f'{TEXTS[0]}\n{{"text": "{TEXTS[1]}"}}\r\n{TEXTS[2]}\n', encoding="utf-8")
    code, lines, _ = _run([str(path)])
    assert code == 0 and lines == _expected(TEXTS[:3])


def test_a_json_line_without_text_is_an_error_that_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    code, _, stderr = _run([str(path)])
    assert code == 1 and f"{path}:2" in stderr and '"text"' in stderr


def test_a_missing_file_is_an_error() -> None:
    code, lines, stderr = _run(["/nonexistent/tickets.jsonl"])
    assert code == 1 and not lines and "cannot read" in stderr
