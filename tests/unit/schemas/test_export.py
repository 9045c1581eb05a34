"""The committed JSON Schema files match the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.export import DEFAULT_DIRECTORY, SCHEMA_MODELS, export_json_schemas, main

STALE = "schemas/json is stale: run `python -m schemas.export` and commit the result"


def test_committed_schemas_are_up_to_date(tmp_path: Path) -> None:
    fresh = {path.name: path.read_text(encoding="utf-8") for path in export_json_schemas(tmp_path)}
    committed = {
        path.name: path.read_text(encoding="utf-8")
        for path in DEFAULT_DIRECTORY.glob("*.schema.json")
    }
    assert sorted(committed) == sorted(fresh), STALE
    for name, text in fresh.items():
        assert committed[name] == text, f"{name}: {STALE}"


def test_one_stable_file_per_model(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path)
    assert [path.name for path in paths] == [f"{name}.schema.json" for name in SCHEMA_MODELS]
    assert set(SCHEMA_MODELS) == {
        "purchase_event",
        "service_event",
        "marketing_event",
        "dead_letter",
        "score_snapshot",
        "alert",
        "customer_erased",
        "training_example",
    }
    for path in paths:
        text = path.read_text(encoding="utf-8")
        assert text.endswith("}\n")
        document = json.loads(text)
        assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        version = 2 if path.name == "dead_letter.schema.json" else 1  # v2: bounded key
        assert document["properties"]["schema_version"]["const"] == version


def test_event_schemas_tell_producers_the_contract(tmp_path: Path) -> None:
    export_json_schemas(tmp_path)
    purchase = json.loads((tmp_path / "purchase_event.schema.json").read_text(encoding="utf-8"))
    assert purchase["properties"]["type"]["enum"] == ["order_placed", "order_returned"]
    payload = purchase["$defs"]["PurchasePayload"]
    assert "USD" in payload["properties"]["currency"]["enum"]
    assert payload["properties"]["amount_minor"]["minimum"] == 0
    assert payload["additionalProperties"] is False
    assert "additionalProperties" not in purchase  # envelope: unknown fields are ignored
    snapshot = json.loads((tmp_path / "score_snapshot.schema.json").read_text(encoding="utf-8"))
    # Outputs always carry every field, so consumers may rely on all of them being present.
    assert set(snapshot["required"]) == set(snapshot["properties"])


def test_command_line_writes_to_the_given_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.schema.json"))) == len(SCHEMA_MODELS)
    assert capsys.readouterr().out.count("wrote ") == len(SCHEMA_MODELS)
