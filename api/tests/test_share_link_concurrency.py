"""Many parallel downloads of one share link against a live server: never more than allowed."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from accounts.models import User
from portal.models import FileDownload, ShareLink
from portal.services.share_links import share_link_create
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream

PARALLEL = 24
ALLOWED = 5
BODY = b"0123456789abcdef" * 4096  # 64 KiB: several pieces per response


def test_parallel_downloads_never_pass_max_downloads(live_server, transactional_db):
    owner = User.objects.create_user("share-race@example.com", "pw-share-race-1")
    file = upload_file_create(owner=owner, stream=BytesStream(BODY), filename="race.bin")
    new = share_link_create(owner=owner, file=file, max_downloads=ALLOWED)
    url = f"{live_server.url}/s/{new.token}/download"

    start = threading.Barrier(PARALLEL)
    outcomes: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def download() -> None:
        start.wait()
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                result = (response.status, response.read())
        except urllib.error.HTTPError as exc:
            result = (exc.code, b"")
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=download) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [200] * ALLOWED + [410] * (PARALLEL - ALLOWED)
    assert all(body == BODY for status, body in outcomes if status == 200)
    assert ShareLink.objects.get(pk=new.link.pk).downloads == ALLOWED
    # Each download is recorded once its server thread has sent the last byte,
    # which may be a moment after the client read it: wait for the count, then
    # make sure it stops there.
    deadline = time.monotonic() + 30
    while FileDownload.objects.count() < ALLOWED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert FileDownload.objects.filter(file=file, via="share_link").count() == ALLOWED
