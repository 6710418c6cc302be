"""Read the original file formats (TSV, CSV, JSONL, line-aligned text) with errors that say what is wrong.

Every reader decodes the whole file as UTF-8 first (a byte-order mark is dropped), so a file in
another encoding fails with the byte position and line, not halfway through with a traceback.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from peftspace.tasks.spec import TaskError


def read_text(path: Path) -> str:
    """The file's text; TaskError if it is missing, not a file, or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise TaskError(f"file not found: {path}")
    if not path.is_file():
        raise TaskError(f"{path} is not a file")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise TaskError(f"{path} is not UTF-8: byte 0x{data[err.start]:02x} at byte position {err.start} (line {line}) "
                        "cannot be decoded; re-save the file as UTF-8 (for example: iconv -f latin1 -t utf-8)") from None


def read_tsv(path: Path, header: bool = True) -> tuple[list[str], list[list[str]]]:
    """A GLUE TSV as (header, rows), read with ``csv.QUOTE_NONE`` (quotes in SST-2/CoLA are text).

    Every row must have as many columns as the header (or the first row, when there is no header).
    """
    text = read_text(path)
    rows = list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))
    rows = [row for row in rows if row]
    if not rows:
        raise TaskError(f"{path} is empty")
    columns = rows[0] if header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    for number, row in enumerate(body, start=2 if header else 1):
        if len(row) != len(columns):
            raise TaskError(f"{path} line {number} has {len(row)} tab-separated columns; expected {len(columns)}")
    return columns, body


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per non-blank line; TaskError naming the line of a malformed one."""
    return parse_jsonl(read_text(path), path)


def parse_jsonl(text: str, path: Path) -> list[dict]:
    records = []
    for number, line in enumerate(_split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise TaskError(f"{path} line {number} is not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise TaskError(f"{path} line {number} is a JSON {type(record).__name__}; expected an object")
        records.append(record)
    return records


def parse_csv(text: str, delimiter: str = ",") -> tuple[list[str], list[dict]]:
    """A CSV (or, with a tab delimiter, an unquoted TSV) with a header row: (columns, rows of column -> value)."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter, quoting=quoting)
    rows = list(reader)
    return list(reader.fieldnames or []), rows


def read_lines(path: Path) -> list[str]:
    """Lines of a plain-text file, newline characters removed."""
    return _split_lines(read_text(path))


def _split_lines(text: str) -> list[str]:
    # only "\n" ends a line: str.splitlines() would also split at U+2028, form feeds etc. inside the text
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines
