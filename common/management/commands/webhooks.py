"""`manage.py webhooks …`: endpoints, the event log, re-sends, test events, delivery runs."""

from __future__ import annotations

import datetime as dt
import json
import re

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from common.exceptions import ApplicationError
from common.management.progress import Progress
from common.models import OutboxEvent

_RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> dt.datetime:
    """An ISO 8601 time, or a duration back from now (``30m``, ``2h``, ``1d``)."""
    match = _RELATIVE.match(value.strip())
    if match:
        return timezone.now() - dt.timedelta(**{_UNITS[match[2]]: int(match[1])})
    parsed = parse_datetime(value.strip())
    if parsed is None:
        raise CommandError(f"--since: {value!r} is neither an ISO 8601 time nor like 30m/2h/1d")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, dt.UTC)
    return parsed


class Command(BaseCommand):
    help = "Webhook endpoints and deliveries: add, list, events, resend, test, deliver."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)

        add = sub.add_parser("add", help="add an endpoint (prints its secret once)")
        add.add_argument("url")
        add.add_argument("--events", default="", help="comma-separated event types (empty = all)")
        add.add_argument("--description", default="")
        add.add_argument("--owner", default=None, help="owner's email")

        sub.add_parser("endpoints", help="list endpoints")

        events = sub.add_parser("events", help="list events with their delivery state")
        events.add_argument("--status", choices=[s.value for s in OutboxEvent.Status])
        events.add_argument("--type", dest="event_type")
        events.add_argument("--limit", type=int, default=20)
        events.add_argument(
            "--json", action="store_true", help="one JSON array of event objects ([] for none)"
        )

        resend = sub.add_parser("resend", help="re-send one delivery, or all failed since a time")
        target = resend.add_mutually_exclusive_group(required=True)
        target.add_argument("delivery_id", nargs="?")
        target.add_argument("--failed-since", help="ISO time or 30m/2h/1d back from now")

        test = sub.add_parser("test", help="send a webhook.test event to one endpoint")
        test.add_argument("endpoint_id")

        rotate = sub.add_parser("rotate", help="rotate an endpoint's secret (prints it once)")
        rotate.add_argument("endpoint_id")

        deliver = sub.add_parser("deliver", help="run the dispatcher in this process")
        deliver.add_argument("--batch-size", type=int, default=None)
        deliver.add_argument(
            "--until-empty", action="store_true", help="repeat until no due work remains"
        )

    def handle(self, *args, action: str, **options) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def do_add(self, *, url, events, description, owner, **_):
        from common.services.webhooks import endpoint_create

        owner_obj = None
        if owner:
            from django.contrib.auth import get_user_model

            from common.exceptions import ApplicationError

            users = get_user_model().objects
            try:
                # The user manager's normalize_email is the accounts app's one
                # spelling of an address (common may not import accounts).
                owner_obj = users.get(email=users.normalize_email(owner))
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            except get_user_model().DoesNotExist as exc:
                raise CommandError(f"No user with email {owner!r}") from exc
        types = [t.strip() for t in events.split(",") if t.strip()]
        endpoint, secret = endpoint_create(
            owner=owner_obj, url=url, event_types=types, description=description
        )
        self.stdout.write(f"endpoint {endpoint.id} {endpoint.url}")
        self.stdout.write(f"secret   {secret}  (shown once; store it in your receiver)")

    def do_endpoints(self, **_):
        from common.selectors import endpoint_list

        for ep in endpoint_list():
            state = "active" if ep.is_active else f"disabled ({ep.disabled_reason})"
            types = ",".join(ep.event_types) or "*"
            self.stdout.write(f"{ep.id}  {state:10}  {types:30}  {ep.url}")

    def do_events(self, *, status, event_type, limit, json: bool, **_):
        from common.selectors import event_list

        # One document, so no events is `[]` rather than no output at all,
        # which a script's JSON parser cannot tell from a failure.
        documents = []
        for ev in event_list(status=status, event_type=event_type)[:limit]:
            deliveries = [
                {
                    "delivery": str(d.id),
                    "endpoint": d.endpoint.url,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_status_code": d.last_status_code,
                    "next_attempt_at": d.next_attempt_at.isoformat() if d.next_attempt_at else None,
                    "last_error": d.last_error,
                }
                for d in ev.deliveries.all()
            ]
            if json:
                documents.append(
                    {
                        "id": str(ev.id),
                        "type": ev.event_type,
                        "status": ev.status,
                        "created_at": ev.created_at.isoformat(),
                        "deliveries": deliveries,
                    }
                )
                continue
            self.stdout.write(
                f"{ev.id}  {ev.created_at:%Y-%m-%d %H:%M:%S}  {ev.event_type:16} {ev.status}"
            )
            for d in deliveries:
                code = d["last_status_code"] or "-"
                extra = f"  next {d['next_attempt_at']}" if d["status"] == "pending" else ""
                err = (
                    f"  {d['last_error']}" if d["last_error"] and d["status"] != "delivered" else ""
                )
                self.stdout.write(
                    f"    {d['delivery']}  {d['status']:9} x{d['attempts']} [{code}] "
                    f"{d['endpoint']}{extra}{err}"
                )
        if json:
            self.stdout.write(_json(documents))

    def do_resend(self, *, delivery_id, failed_since, **_):
        from common.selectors import delivery_get
        from common.services.resend import deliveries_resend_failed, delivery_resend

        if failed_since:
            progress = Progress(self.stdout)
            count = deliveries_resend_failed(
                since=parse_since(failed_since),
                progress=lambda done, total: progress.update(f"re-sending: {done} of {total}"),
            )
            progress.finish()
            self.stdout.write(f"{count} failed deliveries queued for re-sending")
            return
        delivery = delivery_resend(delivery=delivery_get(delivery_id=delivery_id))
        self.stdout.write(f"delivery {delivery.id} queued for re-sending")

    def do_test(self, *, endpoint_id, **_):
        from common.selectors import endpoint_get
        from common.services.webhooks import endpoint_send_test_event

        event = endpoint_send_test_event(endpoint=endpoint_get(endpoint_id=endpoint_id))
        self.stdout.write(f"test event {event.id} queued")

    def do_rotate(self, *, endpoint_id, **_):
        from common.selectors import endpoint_get
        from common.services.webhooks import endpoint_rotate_secret

        secret = endpoint_rotate_secret(endpoint=endpoint_get(endpoint_id=endpoint_id))
        self.stdout.write(f"secret   {secret}  (shown once; the old one signs for the overlap)")

    def do_deliver(self, *, batch_size, until_empty, verbosity=1, **_):
        from django.conf import settings

        from common.services.dispatch import process_pending_events

        size = batch_size or settings.DELIVERY_BATCH_SIZE
        total = {"processed": 0, "delivered": 0, "failed": 0, "remaining": 0}
        while True:
            result = process_pending_events(batch_size=size).as_dict()
            for key in ("processed", "delivered", "failed"):
                total[key] += result[key]
            total["remaining"] = result["remaining"]
            if not until_empty or not result["processed"]:
                break
            if verbosity > 1:
                self.stdout.write(_json(result))
        self.stdout.write(_json(total))


def _json(obj) -> str:
    return json.dumps(obj, default=str)
