"""The lockout backend: django-axes's check, for every login that comes with a request."""

from axes.backends import AxesStandaloneBackend


class LockoutBackend(AxesStandaloneBackend):
    """AxesStandaloneBackend, except that a call without a request (Django's test client `login()`, a shell)
    is left to the next backend instead of raising: there is no address to lock out. Every web login passes
    its request: the admin's login form does, and so does the API (`authenticate(request=...)`)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
