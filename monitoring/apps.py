from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """Health checks, Prometheus metrics and ``manage.py status``.

    It sits above the apps it watches: they announce what happened with
    signals (``portal.signals``, ``common.signals``, Celery's task signals)
    and this app counts, so none of them imports it.
    """

    name = "monitoring"

    def ready(self) -> None:
        from monitoring.metrics import receivers

        receivers.connect()
