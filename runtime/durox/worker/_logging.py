"""Log output for the worker process: JSON lines for collectors, or text for people.

The library never configures logging; the worker process is the one place that owns stderr,
so the handler is set up here. The runtime passes instance and execution ids, orchestration
name and version and the worker id in each record's `extra`; both formats carry them, so a
line about a failed turn can be joined with the instance it belongs to.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

LogFormat = Literal["json", "text"]

CONTEXT_FIELDS: Final = (
    "worker_id",
    "instance_id",
    "execution_id",
    "orchestration_name",
    "orchestration_version",
    "activity",
)
"""Known `extra` keys, shown first and in this order."""

_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    known: dict[str, Any] = {k: record.__dict__[k] for k in CONTEXT_FIELDS if k in record.__dict__}
    others = {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and k not in known and not k.startswith("_")
    }
    return {**known, **others}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [key=value ...]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if not extras:
            return line
        context = " ".join(f"{k}={v}" for k, v in extras.items())
        first, nl, rest = line.partition("\n")  # keep a traceback below the context
        return f"{first} [{context}]{nl}{rest}"


class DefaultFields(logging.Filter):
    """Adds fields (the worker id) to records that do not carry them already."""

    def __init__(self, **fields: Any) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        for k, v in self.fields.items():
            if k not in record.__dict__:
                setattr(record, k, v)
        return True


def configure_logging(
    fmt: LogFormat = "text", level: int | str = logging.INFO, stream: TextIO | None = None
) -> logging.Handler:
    """Replace the root handlers with one writing `fmt` to `stream` (stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
