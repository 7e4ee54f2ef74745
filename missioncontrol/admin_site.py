from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from missioncontrol.roles import has_role


class MissionControlAdminSite(admin.AdminSite):
    """Django admin for the admin role only; everyone signs in through the app's own login."""

    site_header = "Mission Control administration"
    site_title = "Mission Control admin"
    index_title = "Users, roles and records"

    def has_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, "admin")

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Any:
        inner = super().admin_view(view, cacheable)

        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.user.is_authenticated and not self.has_permission(request):
                raise PermissionDenied("The Django admin is for admins.")
            return inner(request, *args, **kwargs)

        guarded.__dict__.update(inner.__dict__)
        return guarded

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.user.is_authenticated:
            raise PermissionDenied("The Django admin is for admins.")
        query = urlencode({"next": request.GET.get("next", reverse("admin:index"))})
        return redirect(f"{reverse('login')}?{query}")
