"""JSON log lines: one object per record, for a log collector to index without parsing text.

Every line has `time` (UTC, ISO 8601), `level`, `logger` and `message`; a record logged with
`extra={"request": {...}}` (config.middleware.RequestLogMiddleware) or any other extra field
carries it too; an exception adds `exc_info` (the formatted traceback).
"""

import json
import logging
from datetime import UTC, datetime

# The attributes every LogRecord has: anything else on a record came from `extra`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
