"""Two machines' worth of Doorito sharing PostgreSQL, RabbitMQ and S3 (README "Scaling out").

Two gunicorn web processes and two Celery workers (told apart by ``-n``)
share the test database, a RabbitMQ vhost of their own and a bucket on a
moto S3 server, as two machines would. Files are uploaded through both webs;
the on-commit delivery runs go through RabbitMQ to both workers. Every file
must be stored once (one row, one object with the bytes sent), every event
delivered, and, with no process crashing, no delivery made twice.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from common.models import OutboxEvent, WebhookDelivery
from common.services.webhooks import endpoint_create
from common.tests.receivers import Receiver
from conftest import database_url_for_tests, start_worker, stop_process, wait_for_ping
from portal.models import UploadFile
from tests.brokers import publishing_to, rabbitmq_vhost, require_server
from tests.web import WebServer, create_token, doorito_env

FILES = 24  # half through each web
S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture
def s3_bucket() -> Iterator[tuple[str, str]]:
    """(endpoint, bucket) on a moto server of this test's own."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = f"scale-out-{uuid.uuid4().hex[:10]}"
    s3(endpoint).create_bucket(Bucket=bucket)
    try:
        yield endpoint, bucket
    finally:
        server.stop()


def s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_CREDENTIALS)


def delivered_by_worker() -> Counter[str]:
    """Deliveries each worker made, from the results of its delivery runs."""
    from django_celery_results.models import TaskResult

    by_worker: Counter[str] = Counter()
    runs = TaskResult.objects.filter(
        task_name="common.tasks.deliver_outbox_events_task", status="SUCCESS"
    )
    for worker, result in runs.values_list("worker", "result"):
        by_worker[worker.split("@")[0]] += json.loads(result)["delivered"]
    return by_worker


@pytest.mark.slow
@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_two_webs_and_two_workers_store_every_file_once_and_deliver_every_event_once(
    settings, tmp_path, s3_bucket
):
    require_server("127.0.0.1", 5672, "RabbitMQ")
    endpoint_url, bucket = s3_bucket
    storage = {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
    }
    receiver = Receiver()
    processes = []
    with rabbitmq_vhost() as vhost:
        assert vhost != "/", "rabbitmqctl could not make a vhost: would share the default one"
        broker = f"amqp://guest:guest@127.0.0.1:5672/{quote(vhost, safe='')}"
        try:
            with publishing_to(settings, broker):
                workers = [
                    start_worker(
                        tmp_path, name=f"{n}@scale-out", CELERY_BROKER_URL=broker, **storage
                    )
                    for n in ("w1", "w2")
                ]
                processes += [w.proc for w in workers]
                env = doorito_env(
                    database_url_for_tests(),
                    tmp_path / "media",
                    CELERY_TASK_ALWAYS_EAGER="false",
                    CELERY_BROKER_URL=broker,
                    **storage,
                )
                token = create_token(env, "scale-out@example.com")
                webs = [WebServer(env, tmp_path / f"web{i}.log", "--workers", "1") for i in (1, 2)]
                processes += [w.proc for w in webs]
                for worker in workers:
                    wait_for_ping(worker, timeout=90)
                endpoint_create(url=receiver.url("/hook"))

                sent: dict[str, str] = {}  # file id -> sha256 of the bytes sent
                served: Counter[int] = Counter()
                for i in range(FILES):
                    web = webs[i % 2]
                    body = f"file {i} through web {i % 2 + 1}\n".encode() * (i + 1)
                    response = httpx.post(
                        f"{web.url}/api/files",
                        headers={"Authorization": f"Bearer {token}"},
                        files={"file": (f"f{i}.txt", body, "text/plain")},
                        timeout=30,
                    )
                    assert response.status_code == 201, (response.text, web.output())
                    sent[response.json()["id"]] = hashlib.sha256(body).hexdigest()
                    served[i % 2] += 1

                receiver.wait_for(FILES, path="/hook", timeout=60)
                # The workers record each outcome (and their run's result)
                # just after the receiver answered.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and (
                    WebhookDelivery.objects.exclude(status="delivered").exists()
                    or sum(delivered_by_worker().values()) < FILES
                ):
                    time.sleep(0.2)
        finally:
            for proc in processes:
                stop_process(proc)
            receiver.close()

    logs = "\n".join(w.output()[-2000:] for w in workers)
    assert served == {0: FILES // 2, 1: FILES // 2}

    # Every file stored once: one stored row per upload, one object each, the bytes sent.
    files = {str(f.id): f for f in UploadFile.objects.all()}
    assert set(files) == set(sent)
    assert {f.status for f in files.values()} == {UploadFile.Status.STORED}
    client = s3(endpoint_url)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert sorted(keys) == sorted(f.storage_key for f in files.values())
    for file_id, digest in sent.items():
        data = client.get_object(Bucket=bucket, Key=files[file_id].storage_key)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == digest == files[file_id].sha256

    # Every event delivered, none twice (nothing crashed, so nothing may repeat).
    deliveries = WebhookDelivery.objects.all()
    assert deliveries.count() == OutboxEvent.objects.count() == FILES
    assert set(deliveries.values_list("status", flat=True)) == {WebhookDelivery.Status.DELIVERED}
    ids = Counter(r.headers["webhook-id"] for r in receiver.on("/hook"))
    assert set(ids) == {str(e) for e in OutboxEvent.objects.values_list("id", flat=True)}, logs
    assert set(ids.values()) == {1}, f"delivered more than once: {ids.most_common(3)}"

    # Both workers took delivery runs from RabbitMQ and made deliveries.
    by_worker = delivered_by_worker()
    assert sum(by_worker.values()) == FILES, (by_worker, logs)
    assert by_worker["w1"] > 0 and by_worker["w2"] > 0, (by_worker, logs)
