"""`runserver` as staticfiles ships it, on a server that sets TCP_NODELAY on every connection (gestima.devserver).

Found before staticfiles' own command because `gestima` comes before `django.contrib.staticfiles` in
INSTALLED_APPS (the first app wins for a command name).
"""

from django.contrib.staticfiles.management.commands.runserver import Command as StaticfilesRunserver

from gestima.devserver import NoDelayWSGIServer


class Command(StaticfilesRunserver):
    server_cls = NoDelayWSGIServer
