"""A process killed in the middle of a simple upload leaves nothing unknown behind."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import ROOT, subprocess_env
from portal.models import UploadFile
from portal.services.cleanup import cleanup_expired_upload_files
from portal.storage import file_storage

# Streams 1 MiB, says so, then hangs until it is killed.
UPLOADER = """
import sys, time
import configurations
configurations.setup()
from accounts.models import User
from portal.services.uploads import upload_file_create

marker = sys.argv[2]

class HangsHalfway:
    sent = 0
    def read(self, n=-1):
        if self.sent >= 1024 * 1024:
            open(marker, "w").close()
            time.sleep(600)
        n = 65536 if n is None or n < 0 else min(n, 65536)
        self.sent += n
        return b"\\x00\\x01" * (n // 2)

upload_file_create(
    owner=User.objects.get(email=sys.argv[1]),
    stream=HangsHalfway(),
    filename="big.bin",
    content_type="application/octet-stream",
)
"""


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_killed_mid_write_leaves_a_record_that_cleanup_removes_with_its_bytes(user, tmp_path):
    marker = tmp_path / "halfway"
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, user.email, str(marker)],
        cwd=ROOT,
        env=subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the uploader exited before it was halfway"
            assert time.monotonic() < deadline, "the uploader never got halfway"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()

    file = UploadFile.objects.get(owner=user)
    assert file.status == UploadFile.Status.UPLOADING
    assert file_storage().exists(file.storage_key)  # the partial bytes, named by the record

    result = cleanup_expired_upload_files(ttl_hours=0, now=timezone.now() + timedelta(seconds=1))

    assert result.deleted == 1
    assert not UploadFile.objects.filter(pk=file.pk).exists()
    assert not file_storage().exists(file.storage_key)
