"""Read raw rows from a local file: jsonl, jsonl.gz, json, csv or parquet.

Every problem is reported in one line naming the file and the line or row:
`data.jsonl line 7: not valid JSON (the last line is cut off)`.
A file is read whole into memory, so one over `size_limit()` (the studio's upload cap) is refused unread.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
from pathlib import Path

from studio import access
from studio.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet")
SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}  # as gradio's max_file_size


def size_limit() -> int:
    """Bytes of the largest data file the studio reads: the upload cap (studio/access.py), in gradio's units.
    Every file is read whole into memory, and also in the UI's own process when a run starts (runs.manager
    checks the file before it creates the run), so a file too big to upload is too big to read from a path."""
    text = access.max_upload()
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]+)\s*", text)
    if not match or match[2].lower() not in SIZE_UNITS:
        raise ConfigError(
            f"{access.UPLOAD_ENV} = {text!r}: expected a size such as 500mb (units {', '.join(SIZE_UNITS)})"
        )
    return int(match[1]) * SIZE_UNITS[match[2].lower()]


def _size_text(size: int) -> str:
    for unit in ("tb", "gb", "mb", "kb"):
        if size >= SIZE_UNITS[unit]:
            return f"{size / SIZE_UNITS[unit]:.1f} {unit.upper()}"
    return f"{size} bytes"


def file_kind(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return suffix
    raise DataError(f"{path}: unsupported file type; use one of {', '.join(SUFFIXES)}")


def read_rows(path: str | Path) -> list[dict]:
    """All rows of a local file as dicts, in file order."""
    path = Path(path).expanduser()
    kind = file_kind(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path}: the file is empty")
    if size > (limit := size_limit()):
        raise DataError(
            f"{path}: {_size_text(size)}, over the {_size_text(limit)} the studio reads (it reads a "
            f"file whole into memory); split the file, or raise {access.UPLOAD_ENV} if memory allows"
        )
    if kind == ".parquet":
        return _read_parquet(path)
    opener = gzip.open if kind == ".jsonl.gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text (is it a binary file with a text extension?)") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path}: cannot be read ({err})") from None
    if kind == ".csv":
        return _parse_csv(path, text)
    if kind == ".json":
        return _parse_json(path, text)
    return parse_jsonl(path, text)


def looks_like(text: str) -> str | None:
    """What a text that is not JSON looks like, for the error ("an HTML page"); None when it is nothing known.
    Python's own message for it ("Expecting value: line 1 column 1") says nothing to a person."""
    start = text.lstrip()[:500].lower()
    if start.startswith("<"):
        return (
            "an HTML page (a web page saved instead of the data file?)"
            if "<html" in start or "<!doctype" in start
            else "an XML document"
        )
    first = start.split("\n", 1)[0]
    if first and "," in first and not first.startswith(("{", "[", '"')):
        return "a CSV table (name it .csv)"
    return None


def parse_jsonl(path: Path, text: str, skip_cut_off_last_line: bool = False) -> list[dict]:
    """The objects of a jsonl text. A file written as an append-only log (votes) may end in a line whose write did
    not finish; with skip_cut_off_last_line that line is left out instead of refused."""
    rows = []
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            last = number == len(lines) and not text.endswith("\n")
            if last and skip_cut_off_last_line:
                log.warning("%s line %d: cut off (its write did not finish), skipped", path, number)
                continue
            if number == 1 and (kind := looks_like(text)):
                raise DataError(f"{path}: {kind}, not JSON lines (one JSON object per line)") from None
            why = "the last line is cut off" if last else err.msg
            raise DataError(f"{path} line {number}: not valid JSON ({why})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {number}: expected a JSON object with named fields, got {type(row).__name__}")
        rows.append(row)
    return rows


def _parse_json(path: Path, text: str) -> list[dict]:
    try:
        data = json.loads(text)
    except ValueError as err:
        if err.lineno == 1 and err.colno == 1 and (kind := looks_like(text)):
            raise DataError(f"{path}: {kind}, not JSON") from None
        raise DataError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"train": [...]} or {"data": [...]}
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects")
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise DataError(f"{path} row {number}: expected a JSON object with named fields, got {type(row).__name__}")
    return data


def _parse_csv(path: Path, text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    try:
        for row in reader:
            if None in row:
                raise DataError(f"{path} line {reader.line_num}: more values than the header has columns")
            rows.append(row)
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num}: not valid CSV ({err})") from None
    if reader.fieldnames is None:
        raise DataError(f"{path}: no header row")
    return rows


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except (pyarrow.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable parquet file ({str(err).splitlines()[0]})") from None
