"""Signing in: the user model, registration, failed sign-in throttling
(django-axes; its middleware is in ``boot.settings.Base.MIDDLEWARE``),
password rules and the password-reset mail."""

from __future__ import annotations

from datetime import timedelta

from configurations import values

from boot.settings_parts.environment import env


class AccountSettings:
    AUTH_USER_MODEL = "accounts.User"
    LOGIN_URL = "/login/"
    LOGIN_REDIRECT_URL = "/"
    LOGOUT_REDIRECT_URL = "/login/"
    AUTHENTICATION_BACKENDS = [
        "axes.backends.AxesStandaloneBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    # Whether anyone may create an account at /register/ (staff create users
    # with `make manage ARGS="create_user …"` either way).
    REGISTRATION_OPEN = env(values.BooleanValue, True)

    # Failed sign-ins are counted per (account, address) pair: after
    # AXES_FAILURE_LIMIT failures that pair is locked out for
    # AXES_COOLOFF_MINUTES, without locking the owner out from elsewhere.
    AXES_FAILURE_LIMIT = env(values.IntegerValue, 5)
    AXES_COOLOFF_MINUTES = env(values.IntegerValue, 15)
    AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
    AXES_RESET_ON_SUCCESS = True
    # Django's sign-in form calls the email field "username".
    AXES_USERNAME_FORM_FIELD = "username"
    AXES_LOCKOUT_TEMPLATE = "frontend/accounts/locked_out.html"
    AXES_VERBOSE = False

    @property
    def AXES_COOLOFF_TIME(self):
        return timedelta(minutes=self.AXES_COOLOFF_MINUTES)

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
