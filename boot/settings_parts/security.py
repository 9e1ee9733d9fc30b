"""What browsers are allowed: the Content Security Policy of every page and
CORS for ``/api/`` (django-cors-headers). Production's HTTPS settings are
``boot.settings.Production``'s own."""

from __future__ import annotations

from configurations import values
from django.utils.csp import CSP


class SecuritySettings:
    # Every page script and style is a static file of this origin (no inline
    # code, no CDN), so the policy can be this strict. Uppy reads dropped
    # files into blob: URLs for its thumbnails.
    SECURE_CSP = {
        "default-src": [CSP.SELF],
        "script-src": [CSP.SELF],
        "style-src": [CSP.SELF],
        "img-src": [CSP.SELF, "data:", "blob:"],
        "connect-src": [CSP.SELF],
        "font-src": [CSP.SELF, "data:"],
        "object-src": [CSP.NONE],
        "base-uri": [CSP.SELF],
        "form-action": [CSP.SELF],
        "frame-ancestors": [CSP.NONE],
    }

    # Browser origins allowed on /api/ and /api/tus/ (django-cors-headers),
    # read from CORS_ALLOWED_ORIGINS: "*" means any origin and then never
    # with credentials; "null" (sandboxed frames, file: pages) is never allowed.
    CORS_ORIGINS_FROM_ENV = values.ListValue(
        [], environ_name="CORS_ALLOWED_ORIGINS", environ_prefix=None
    )
    CORS_URLS_REGEX = r"^/api/.*$"
    CORS_ALLOW_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
    CORS_ALLOW_HEADERS = (
        *("accept", "authorization", "content-type", "x-csrftoken", "x-requested-with"),
        *("tus-resumable", "upload-length", "upload-metadata", "upload-offset"),
        *("upload-defer-length", "upload-concat", "upload-checksum", "x-http-method-override"),
    )
    CORS_EXPOSE_HEADERS = (
        *("Location", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size"),
        *("Tus-Checksum-Algorithm", "Upload-Offset", "Upload-Length", "Upload-Metadata"),
        *("Upload-Defer-Length", "Upload-Concat", "Upload-Expires"),
    )

    @property
    def CORS_ALLOW_ALL_ORIGINS(self):
        return "*" in [o.strip() for o in self.CORS_ORIGINS_FROM_ENV]

    @property
    def CORS_ALLOWED_ORIGINS(self):
        origins = [o.strip().rstrip("/") for o in self.CORS_ORIGINS_FROM_ENV]
        return [o for o in origins if o and o not in ("*", "null")]

    @property
    def CORS_ALLOW_CREDENTIALS(self):
        # A logged-in browser session works cross-origin only for listed origins.
        return not self.CORS_ALLOW_ALL_ORIGINS
