from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from monitoring.services.health import run_readiness_checks, scanner_state


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Process liveness: no I/O, so a slow database never kills the pod."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = run_readiness_checks()
    failed = sorted(name for name, result in checks.items() if result != "ok")
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": checks,
        "failed": failed,
        "scanner": scanner_state(),
    }
    return JsonResponse(body, status=503 if failed else 200)
