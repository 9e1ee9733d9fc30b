"""What operators watch: the log format and level, and who may read ``/metrics``."""

from __future__ import annotations

from configurations import values

from boot.settings_parts.environment import env


class MonitoringSettings:
    # /metrics: with a token set, only a request bearing it is served;
    # without one, only peers in these networks (docs/operations.md, "Metrics").
    METRICS_TOKEN = env(values.Value, "")
    METRICS_ALLOWED_NETWORKS = env(values.ListValue, ["127.0.0.1/32", "::1/128"])

    LOG_FORMAT = env(default="text")
    LOG_LEVEL = env(default="INFO")

    @property
    def LOGGING(self):
        formatter = "json" if self.LOG_FORMAT == "json" else "text"
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
                "json": {
                    "()": "pythonjsonlogger.json.JsonFormatter",
                    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
                },
            },
            "filters": {
                "client_errors": {"()": "monitoring.log_filters.ClientErrorWithoutTraceback"}
            },
            "handlers": {
                "console": {
                    "class": "logging.StreamHandler",
                    "formatter": formatter,
                    "filters": ["client_errors"],
                }
            },
            "root": {"handlers": ["console"], "level": self.LOG_LEVEL},
            "loggers": {
                # Named without handlers, so dictConfig drops those Django's
                # defaults gave it (a console handler while DEBUG is on, mail to
                # ADMINS, which is not set): its records reach the root handler
                # only, instead of twice under `make run`.
                "django": {"level": self.LOG_LEVEL},
                "django.db.backends": {"level": "INFO"},
                # One line per webhook request drowns the worker log; outcomes
                # are recorded on the delivery rows instead.
                "httpx": {"level": "WARNING"},
            },
        }
