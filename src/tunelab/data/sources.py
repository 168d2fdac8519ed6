"""Read data records from local files (json, jsonl, parquet, csv, txt) or HF dataset names.

A .txt file is plain text for continued pretraining: one `{"text"}` record per paragraph
(blank-line separated), as the `datasets` text builder reads it with `sample_by="paragraph"`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.core.config import ConfigError

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}


class DataError(ValueError):
    """A malformed data file or record; the message names the file, record and field."""


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{line_no}: invalid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def _read_json(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def read_records(path: str, split: str = "train", limit: int | None = None) -> list[dict]:
    """Records of a local data file, or of an HF dataset name when `path` is not a file."""
    file = Path(path)
    if file.suffix in LOCAL_FORMATS and not file.exists():
        raise DataError(f"{path}: data file not found")
    if file.suffix == ".jsonl":
        records = _read_jsonl(file)
    elif file.suffix == ".json":
        records = _read_json(file)
    elif file.suffix in LOCAL_FORMATS:
        import datasets

        options = {"sample_by": "paragraph"} if file.suffix == ".txt" else {}
        loaded = datasets.load_dataset(LOCAL_FORMATS[file.suffix], data_files=str(file), **options)
        records = list(loaded["train"])
    elif file.exists():
        raise ConfigError(f"{path}: unsupported data file type; expected {sorted(LOCAL_FORMATS)}")
    else:
        import datasets

        records = list(datasets.load_dataset(path, split=split))
    return records[:limit] if limit is not None else records
