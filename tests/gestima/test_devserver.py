"""`./dev run`'s server (manage.py runserver) sends without Nagle's algorithm: no ~40 ms stall between the small
pieces of a response (the review screen's decisions wait for their answer)."""

import socket

from django.core.management import get_commands, load_command_class

from gestima.devserver import NoDelayWSGIServer


def test_runserver_is_the_one_whose_connections_have_tcp_nodelay():
    command = load_command_class(get_commands()["runserver"], "runserver")
    assert command.server_cls is NoDelayWSGIServer
    assert "--insecure" in command.create_parser("manage.py", "runserver").format_help()  # staticfiles' options kept


def test_accepted_connections_have_tcp_nodelay():
    server = NoDelayWSGIServer(("127.0.0.1", 0), None)
    try:
        with socket.create_connection(server.server_address) as client:
            connection, _ = server.get_request()
            with connection:
                assert connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # the default, for contrast
    finally:
        server.server_close()
