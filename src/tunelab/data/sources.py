"""Read data records from local files (json, jsonl, parquet, csv, txt; json/jsonl may be .gz) or HF
dataset names.

A .txt file is plain text for continued pretraining: one `{"text"}` record per paragraph
(blank-line separated), as the `datasets` text builder reads it with `sample_by="paragraph"`.

Every record keeps where it came from (`Records.places`: `file:line`, 1-based, as an editor shows
it), so a data module's error names the line. A file that cannot be read at all (a directory, not
UTF-8, compressed under a plain name, empty) is a DataError naming the file, never a bare OSError.
Files a user's tools commonly write still load: Windows line endings, a UTF-8 byte-order mark,
blank lines, extra fields.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tunelab.core.config import ConfigError, DataError

__all__ = ["DataError", "Records", "place", "read_records"]

LOCAL_FORMATS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv", ".txt": "text"}
# Leading bytes of files that are not text, and what to say about them.
MAGIC = {
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a zip archive",
    b"BZh": "bzip2-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"PAR1": "a parquet file",
}


class Records(list):
    """A list of records that also knows each one's place (`file:line`) for error messages."""

    def __init__(self, items: list, places: list[str]) -> None:
        super().__init__(items)
        self.places = places

    def head(self, limit: int | None) -> Records:
        """The first `limit` records (all for None), places kept."""
        return self if limit is None else Records(self[:limit], self.places[:limit])


def place(records: object, i: int, source: str) -> str:
    """Where record `i` of `records` came from: `file:line` when known, else `source: record i+1`."""
    places = getattr(records, "places", None)
    if places is not None and i < len(places):
        return places[i]
    return f"{source}: record {i + 1}"


def _line_of(raw: bytes | str, offset: int) -> int:
    newline = b"\n" if isinstance(raw, bytes) else "\n"
    return raw.count(newline, 0, offset) + 1


def _text(path: Path) -> str:
    """The file's text: UTF-8 (a byte-order mark dropped), gunzipped when the name ends in .gz."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file ({err.strerror or err})") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: not a valid gzip file ({err})") from None
    else:
        for magic, what in MAGIC.items():
            if raw.startswith(magic):
                hint = f"; decompress it or name it {path.name}.gz" if what == "gzip-compressed" else ""
                raise DataError(f"{path}: the file is {what}, not {path.suffix} text{hint}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        byte = raw[err.start]
        raise DataError(
            f"{path}:{_line_of(raw, err.start)}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"
        ) from None
    if "\x00" in text:
        raise DataError(f"{path}:{_line_of(text, text.index(chr(0)))}: a NUL byte: a binary file, not text")
    return text


def _read_jsonl(path: Path, text: str) -> Records:
    records, places = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            hint = " (the file looks like one JSON list: name it .json)" if line.strip() == "[" else ""
            raise DataError(f"{path}:{line_no}: invalid JSON ({err.msg}){hint}") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
        places.append(f"{path}:{line_no}")
    return Records(records, places)


def _read_json(path: Path, text: str) -> Records:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (one JSON object per line? name the file .jsonl)" if err.msg == "Extra data" else ""
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg}){hint}") from None
    if not isinstance(data, list):
        keys = f" with fields {sorted(data)[:5]}" if isinstance(data, dict) else ""
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}{keys}")
    return Records(data, _element_places(path, text, len(data)))


def _element_places(path: Path, text: str, n: int) -> list[str]:
    """`file:line` of each element of the JSON list in `text` (parsed already, so well formed)."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    places = []
    for _ in range(n):
        while text[pos] in " \t\r\n,":
            pos += 1
        places.append(f"{path}:{_line_of(text, pos)}")
        _, pos = decoder.raw_decode(text, pos)
    return places


def _read_with_datasets(path: Path, split: str, places: str) -> Records:
    """A local parquet/csv/txt file or an HF dataset through `datasets`; its errors as DataError."""
    import datasets

    try:
        if path.suffix in LOCAL_FORMATS:
            options = {"sample_by": "paragraph"} if path.suffix == ".txt" else {}
            rows = list(
                datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), **options)["train"]
            )
        else:
            rows = list(datasets.load_dataset(str(path), split=split))
    except (DataError, ConfigError):
        raise
    except Exception as err:  # any reader failure is a bad file or name: said in one line
        what = (
            f"a {path.suffix[1:]} file"
            if path.suffix in LOCAL_FORMATS
            else f"an HF dataset (split {split!r})"
        )
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(f"{path}: cannot read it as {what} ({type(err).__name__}: {first[:200]})") from None
    header = 2 if path.suffix == ".csv" else 1  # csv: line 1 is the header; others count rows
    label = {".csv": "{p}:{n}", ".txt": "{p}: paragraph {n}"}.get(path.suffix, places)
    return Records(rows, [label.format(p=path, n=i + header) for i in range(len(rows))])


def read_records(path: str, split: str = "train", limit: int | None = None) -> Records:
    """Records of a local data file, or of an HF dataset name when `path` is not a file."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"data limit={limit!r}: expected a positive number of records, or null for all")
    file = Path(path)
    kind = file.suffix if file.suffix != ".gz" else Path(file.stem).suffix
    if kind in LOCAL_FORMATS:
        if file.is_dir():
            raise DataError(f"{path}: is a directory; expected a {kind} file")
        if not file.exists():
            raise DataError(f"{path}: data file not found")
    if kind in (".jsonl", ".json") and (file.suffix == kind or file.suffix == ".gz"):
        text = _text(file)
        records = _read_jsonl(file, text) if kind == ".jsonl" else _read_json(file, text)
    elif file.suffix in LOCAL_FORMATS:
        if file.suffix in (".csv", ".txt"):
            _text(file)  # the same checks (binary, compressed, not UTF-8) before datasets reads it
        records = _read_with_datasets(file, split, "{p}: row {n}")
    elif file.is_file():
        raise ConfigError(
            f"{path}: unsupported data file type; expected {sorted(LOCAL_FORMATS)} (json/jsonl may be .gz)"
        )
    else:
        records = _read_with_datasets(file, split, f"{path} ({split} split): row {{n}}")
    if not records:
        raise DataError(f"{path}: no records (expected at least one)")
    return records.head(limit)
