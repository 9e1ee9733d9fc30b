"""Where files live: static files, and uploads on the local filesystem or S3."""

from __future__ import annotations

from configurations import values

from boot.settings_parts.environment import BASE_DIR, env


class StorageSettings:
    STATIC_URL = "/static/"
    # Hashed, compressed static files (needs `collectstatic`) outside DEBUG.
    STATIC_MANIFEST = True
    STATIC_ROOT = env(default=str(BASE_DIR / ".data" / "static"))
    MEDIA_ROOT = env(default=str(BASE_DIR / ".data" / "media"))
    MEDIA_URL = "/media/"

    # Storage: local filesystem unless STORAGE_BACKEND=s3.
    STORAGE_BACKEND = env(default="local")
    AWS_STORAGE_BUCKET_NAME = env(default="doorito")
    AWS_S3_ENDPOINT_URL = env(default=None)
    AWS_S3_REGION_NAME = env(default="us-east-1")
    AWS_ACCESS_KEY_ID = env(default=None)
    AWS_SECRET_ACCESS_KEY = env(default=None)
    AWS_QUERYSTRING_EXPIRE = env(values.IntegerValue, 3600)

    @property
    def STORAGES(self):
        if self.STORAGE_BACKEND == "s3":
            default = {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": self.AWS_STORAGE_BUCKET_NAME,
                    "endpoint_url": self.AWS_S3_ENDPOINT_URL,
                    "region_name": self.AWS_S3_REGION_NAME,
                    "access_key": self.AWS_ACCESS_KEY_ID,
                    "secret_key": self.AWS_SECRET_ACCESS_KEY,
                    "querystring_expire": self.AWS_QUERYSTRING_EXPIRE,
                    "file_overwrite": False,
                },
            }
        else:
            default = {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": self.MEDIA_ROOT},
            }
        return {
            "default": default,
            "staticfiles": {
                "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
                if self.STATIC_MANIFEST and not self.DEBUG
                else "django.contrib.staticfiles.storage.StaticFilesStorage"
            },
        }
