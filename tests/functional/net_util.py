"""Small network helpers shared by the functional tests."""
import socket


def free_port(kind=socket.SOCK_STREAM):
    """A loopback port the kernel just gave out for kind (TCP by default, or
    socket.SOCK_DGRAM), free again when this returns."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
