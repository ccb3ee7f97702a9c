"""ApiVersions v3 names the client (KIP-511): Kafka refuses empty or odd
client_software_name / client_software_version with INVALID_REQUEST (42);
so does Strom, while every real client's own names pass (the rest of the
suite connects with them)."""
import socket
import struct

INVALID_REQUEST = 42


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def compact_str(s):
    b = s.encode()
    return uvarint(len(b) + 1) + b


def api_versions_v3(bootstrap, name, version):
    host, port = bootstrap.rsplit(":", 1)
    # Header v2: api key, version, correlation id, client id (nullable string), tags.
    header = struct.pack(">hhi", 18, 3, 7) + struct.pack(">h", 4) + b"test" + b"\x00"
    body = compact_str(name) + compact_str(version) + b"\x00"
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        resp = s.recv(size, socket.MSG_WAITALL)
    correlation, error = struct.unpack(">ih", resp[:6])
    assert correlation == 7
    return error


def test_client_names_checked_as_kafka_does(broker):
    assert api_versions_v3(broker.bootstrap, "my-client", "1.2.3") == 0
    for name, version in (("", "1.0"), ("x", ""), ("bad name", "1"), ("-x", "1"), ("x", "1.0-"), ("x_y", "1")):
        assert api_versions_v3(broker.bootstrap, name, version) == INVALID_REQUEST, (name, version)
