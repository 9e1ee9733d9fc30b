"""Sign in/out, registration and passwords: django.contrib.auth's views with
the portal's templates; registration calls the accounts service."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.debug import sensitive_post_parameters

from accounts.services.users import user_create
from common.exceptions import ApplicationError
from frontend.forms.accounts import EmailAuthenticationForm, EmailPasswordResetForm, RegisterForm
from frontend.forms.errors import add_service_error

TEMPLATES = "frontend/accounts"


class LoginView(auth_views.LoginView):
    """Django's sign-in view; submitted credentials alone decide who is signed in.

    Django's ``redirect_authenticated_user`` redirects every request of a
    signed-in browser, a POST of credentials too: a browser carrying someone
    else's session (planted through a shared machine or a login-CSRF) stayed
    in that account when its user typed their own email and password, and
    went on uploading into it. Here only opening the page (GET) while signed
    in redirects; a POST first signs the browser out, so the session
    afterwards is the submitter's, or none if the credentials are wrong.
    """

    template_name = f"{TEMPLATES}/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = False

    def get(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            target = self.get_success_url()
            if target != request.path:  # a ?next= naming this page would loop
                return HttpResponseRedirect(target)
        return super().get(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            logout(request)
        return super().post(request, *args, **kwargs)


class LogoutView(auth_views.LogoutView):
    next_page = "frontend:login"  # a URL name: LogoutView resolves it

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are signed out.")
        return response


@sensitive_post_parameters("password1", "password2")
def register(request: HttpRequest) -> HttpResponse:
    if not settings.REGISTRATION_OPEN:
        raise Http404("Registration is closed.")
    if request.user.is_authenticated:
        return redirect("frontend:dashboard")
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(
                email=form.cleaned_data["email"], password=form.cleaned_data["password1"]
            )
        except ApplicationError as exc:
            add_service_error(form, exc)
        else:
            login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
            messages.success(request, f"Welcome to Doorito, {user.email}.")
            return redirect("frontend:dashboard")
    return render(request, f"{TEMPLATES}/register.html", {"form": form})


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = f"{TEMPLATES}/password_change.html"
    success_url = reverse_lazy("frontend:dashboard")

    def form_valid(self, form):
        messages.success(self.request, "Your password was changed.")
        return super().form_valid(form)


class PasswordResetView(auth_views.PasswordResetView):
    form_class = EmailPasswordResetForm
    template_name = f"{TEMPLATES}/password_reset.html"
    email_template_name = f"{TEMPLATES}/password_reset_email.txt"
    subject_template_name = f"{TEMPLATES}/password_reset_subject.txt"
    success_url = reverse_lazy("frontend:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = f"{TEMPLATES}/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = f"{TEMPLATES}/password_reset_confirm.html"
    success_url = reverse_lazy("frontend:login")

    def form_valid(self, form):
        messages.success(self.request, "Your password was set. Sign in with it now.")
        return super().form_valid(form)
