"""Export the JSON Schema of every topic's messages, for consumers outside Python.

Run ``python -m schemas.export`` after changing a model and commit the files it writes to
``schemas/json/``; a unit test fails while they are stale. Input events are exported as what a
producer may send (validation mode), outputs as what crm-scoring writes (serialization mode).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from schemas.events import MarketingEvent, PurchaseEvent, ServiceEvent
from schemas.outputs import Alert, CustomerErased, DeadLetter, ScoreSnapshot, TrainingExample

__all__ = ["DEFAULT_DIRECTORY", "SCHEMA_MODELS", "export_json_schemas", "json_schema", "main"]

#: Where the committed schema files live.
DEFAULT_DIRECTORY = Path(__file__).resolve().parent / "json"

_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: File stem → (model, mode) for every exported schema.
SCHEMA_MODELS: Mapping[str, tuple[type[BaseModel], JsonSchemaMode]] = {
    "purchase_event": (PurchaseEvent, "validation"),
    "service_event": (ServiceEvent, "validation"),
    "marketing_event": (MarketingEvent, "validation"),
    "dead_letter": (DeadLetter, "serialization"),
    "score_snapshot": (ScoreSnapshot, "serialization"),
    "alert": (Alert, "serialization"),
    "customer_erased": (CustomerErased, "serialization"),
    "training_example": (TrainingExample, "serialization"),
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema document for ``name`` (a key of :data:`SCHEMA_MODELS`)."""
    model, mode = SCHEMA_MODELS[name]
    return {"$schema": _DIALECT, **model.model_json_schema(mode=mode)}


def export_json_schemas(directory: Path = DEFAULT_DIRECTORY) -> list[Path]:
    """Write ``<name>.schema.json`` for every model into ``directory``; return the paths.

    Keys are sorted and each file ends with a newline, so the output is stable under review.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SCHEMA_MODELS:
        path = directory / f"{name}.schema.json"
        text = json.dumps(json_schema(name), indent=2, sort_keys=True, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m schemas.export [DIRECTORY]`` (default ``schemas/json``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    directory = Path(args[0]) if args else DEFAULT_DIRECTORY
    for path in export_json_schemas(directory):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
