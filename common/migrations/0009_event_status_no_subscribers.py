"""Events nobody received are ``no_subscribers``, not ``delivered``.

Existing rows: an event written with no subscriber was marked delivered in
the statement that wrote it (``delivered_at = created_at`` exactly) and has
no delivery; an event whose only endpoint was deleted stayed ``pending`` with
no delivery. Both become ``no_subscribers``. A delivered event whose endpoint
was deleted later (``delivered_at`` after ``created_at``) stays delivered.
"""

from django.db import migrations, models

FORWARD = """
UPDATE common_outboxevent e SET status = 'no_subscribers', delivered_at = NULL,
    next_attempt_at = NULL
WHERE (e.status = 'pending' OR (e.status = 'delivered' AND e.delivered_at = e.created_at))
  AND NOT EXISTS (SELECT 1 FROM common_webhookdelivery d WHERE d.event_id = e.id);
"""

REVERSE = """
UPDATE common_outboxevent SET status = 'delivered', delivered_at = created_at
WHERE status = 'no_subscribers';
"""


class Migration(migrations.Migration):
    dependencies = [
        ("common", "0008_delivery_attempt"),
    ]

    operations = [
        migrations.AlterField(
            model_name="outboxevent",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("delivered", "Delivered"),
                    ("failed", "Failed"),
                    ("no_subscribers", "No subscribers"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
