"""The development server (`./dev run`, `manage.py runserver`) without Nagle's algorithm on its connections.

Django's server writes a response in several small sends (status and headers, then the body in pieces) and
the browser acknowledges late (delayed ACK), so with Nagle on, a small send often waits ~40 ms for the ACK
of the one before: most of the time of a review decision on loopback. TCP_NODELAY sends each piece at once.
"""

import socket

from django.core.servers.basehttp import WSGIServer


class NoDelayWSGIServer(WSGIServer):
    def get_request(self):
        connection, address = super().get_request()
        if connection.family in (socket.AF_INET, socket.AF_INET6):
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, address
