"""Authenticates by an ``X-User-Id`` header with one primary-key lookup, standing in for
session auth (which costs a session query on top). Bench only: trusts the header."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser


class HeaderUserMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.User = get_user_model()

    def __call__(self, request):
        uid = request.headers.get("X-User-Id")
        user = None
        if uid:
            user = self.User.objects.filter(pk=int(uid)).first()
        request.user = user or AnonymousUser()
        return self.get_response(request)
