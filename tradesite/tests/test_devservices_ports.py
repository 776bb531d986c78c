"""`make run` keeps Redis on its port after a restart: a port whose last connection is in
TIME_WAIT is free (Redis binds with SO_REUSEADDR), a port another program listens on is not."""

import socket

from tradesite.devservices import free_port, port_free


def test_a_port_in_time_wait_is_free_and_a_listening_one_is_not():
    port = free_port()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    assert not port_free(port)  # a program listens there
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end of the connection is in TIME_WAIT
    server.close()
    client.close()
    plain = socket.socket()  # what run.sh's probe did: a bind without SO_REUSEADDR
    try:
        plain.bind(("127.0.0.1", port))
        time_wait_blocks_a_plain_bind = False
    except OSError:
        time_wait_blocks_a_plain_bind = True
    finally:
        plain.close()
    assert time_wait_blocks_a_plain_bind  # the old probe moved Redis to another port
    assert port_free(port)
