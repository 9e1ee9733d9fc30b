"""Signing in: the user model, registration, failed sign-in throttling
(``accounts.backends``; the lock-out page's middleware is in
``boot.settings.Base.MIDDLEWARE``), which proxies to believe about the client's
address, password rules and the password-reset mail."""

from __future__ import annotations

from configurations import values

from boot.settings_parts.environment import env


class AccountSettings:
    AUTH_USER_MODEL = "accounts.User"
    LOGIN_URL = "/login/"
    LOGIN_REDIRECT_URL = "/"
    LOGOUT_REDIRECT_URL = "/login/"
    # The only backend: Django's password check, counted by the sign-in
    # throttle before it runs (a second backend could check passwords uncounted).
    AUTHENTICATION_BACKENDS = ["accounts.backends.ThrottledModelBackend"]
    # Whether anyone may create an account at /register/ (staff create users
    # with `make manage ARGS="create_user …"` either way).
    REGISTRATION_OPEN = env(values.BooleanValue, True)

    # Sign-in attempts are counted per (account, address) pair before the
    # password is checked (accounts/services/sign_in_throttle.py): after
    # AXES_FAILURE_LIMIT failures that pair is locked out for
    # AXES_COOLOFF_MINUTES, without locking the owner out from elsewhere. The
    # names are django-axes', which did this before, so deployments keep them.
    AXES_FAILURE_LIMIT = env(values.IntegerValue, 5)
    AXES_COOLOFF_MINUTES = env(values.IntegerValue, 15)
    # Peers (IPs or CIDRs) whose X-Forwarded-For names the client: the TLS
    # proxy in front of the web processes. Empty: the connection's address is
    # the client's (accounts/client_address.py).
    TRUSTED_PROXIES = env(values.ListValue, [])

    # Password-reset mail. Dev prints it on the console; Production sends it
    # through the SMTP server below.
    EMAIL_BACKEND = env(default="django.core.mail.backends.smtp.EmailBackend")
    EMAIL_HOST = env(default="localhost")
    EMAIL_PORT = env(values.IntegerValue, 25)
    EMAIL_HOST_USER = env(default="")
    EMAIL_HOST_PASSWORD = env(default="")
    EMAIL_USE_TLS = env(values.BooleanValue, False)
    EMAIL_USE_SSL = env(values.BooleanValue, False)
    DEFAULT_FROM_EMAIL = env(default="Doorito <doorito@localhost>")
    AUTH_PASSWORD_VALIDATORS = [
        {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
        {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
        {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
        {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    ]
