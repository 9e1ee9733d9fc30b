from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.forms import EmailAddressField
from accounts.models import ApiToken, User
from accounts.services.tokens import token_create, token_name_clean, token_revoke
from common.exceptions import ApplicationError


class AdminEmailAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form with the portal's email field (same spelling, same errors)."""

    username = EmailAddressField(label="Email", widget=forms.EmailInput(attrs={"autofocus": True}))


# The admin signs in through the same backend and throttle as /login/
# (accounts.backends); this only makes it name a mistyped address as such.
admin.site.login_form = AdminEmailAuthenticationForm


class UserAddForm(AdminUserCreationForm):
    """Django's add form; the address is stored in its one spelling
    (``accounts.emails``), so another spelling of a taken one is refused."""

    email = EmailAddressField(label="Email")

    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    email = EmailAddressField(label="Email")

    class Meta(UserChangeForm.Meta):
        model = User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserAddForm
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password", "name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class ApiTokenAddForm(forms.ModelForm):
    """Makes a token through ``token_create``; ``self.raw`` is its plain value."""

    class Meta:
        model = ApiToken
        fields = ("user", "name")

    def clean_name(self) -> str:
        try:
            return token_name_clean(self.cleaned_data.get("name", ""))
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc

    def _post_clean(self):
        pass  # token_create writes the record (and its hash) in save()

    def save(self, commit: bool = True) -> ApiToken:
        token, self.raw = token_create(
            user=self.cleaned_data["user"], name=self.cleaned_data["name"]
        )
        self.instance = token
        return token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Lists and revokes tokens; adding one goes through ``token_create`` and
    shows the plain value once (a message), as the CLI and the API do."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    raw_id_fields = ["user"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiTokenAddForm
            kwargs["fields"] = ["user", "name"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name"]
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_form(self, request, form, change):
        token = form.save()
        self.message_user(
            request,
            f"Token {token.name!r} for {token.user.email} (shown once, copy it now): {form.raw}",
            messages.WARNING,
        )
        return token

    def save_model(self, request, obj, form, change):
        pass  # created by token_create in save_form

    def save_related(self, request, form, formsets, change):
        pass

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset):
        for token in queryset.filter(revoked_at__isnull=True):
            token_revoke(token=token)
