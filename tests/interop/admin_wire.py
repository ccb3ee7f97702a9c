"""Raw flexible-version (KIP-482) requests for admin APIs whose answers the
Python clients do not fully show: ConsumerGroupDescribe (69), DescribeGroups
v5/v6 (15), ListGroups v5 (16), DescribeTopicPartitions (75) and
DescribeAcls v3 (29). Each call opens a connection, sends one request and
decodes the response into dicts."""
import socket
import struct

NULL = object()  # a null nullable string or array in a request


def _uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _cstr(s):
    if s is NULL or s is None:
        return b"\x00"
    s = s.encode()
    return _uvarint(len(s) + 1) + s


def _carr(items):
    if items is NULL or items is None:
        return b"\x00"
    return _uvarint(len(items) + 1) + b"".join(items)


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("response ends early")
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def boolean(self):
        return self.take(1) != b"\x00"

    def uvarint(self):
        r = shift = 0
        while True:
            b = self.take(1)[0]
            r |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return r

    def cstr(self):
        n = self.uvarint() - 1
        return None if n < 0 else self.take(n).decode()

    def cbytes(self):
        n = self.uvarint() - 1
        return None if n < 0 else self.take(n)

    def carr(self, item):
        n = self.uvarint() - 1
        return None if n < 0 else [item() for _ in range(n)]

    def uuid(self):
        return self.take(16).hex()

    def tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def call(bootstrap, api_key, version, body, timeout=15):
    """Sends one request (header v2) and returns a reader past the response header (v1)."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        client = b"admin-sweep"
        header = struct.pack(">hhih", api_key, version, 1, len(client)) + client + b"\x00"
        msg = header + body
        s.sendall(struct.pack(">i", len(msg)) + msg)
        data = b""
        while len(data) < 4:
            chunk = s.recv(4 - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        n = struct.unpack(">i", data)[0]
        data = b""
        while len(data) < n:
            chunk = s.recv(min(n - len(data), 65536))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
    r = _Reader(data)
    assert r.i32() == 1, "correlation id"
    r.tags()
    return r


def consumer_group_describe(bootstrap, groups, version=1, include_ops=True):
    r = call(bootstrap, 69, version, _carr([_cstr(g) for g in groups]) + (b"\x01" if include_ops else b"\x00") + b"\x00")
    r.i32()

    def assignment():
        def topic():
            t = {"topic_id": r.uuid(), "topic": r.cstr(), "partitions": r.carr(r.i32)}
            r.tags()
            return t
        a = r.carr(topic)
        r.tags()
        return a

    def member():
        m = {"member_id": r.cstr(), "instance_id": r.cstr(), "rack_id": r.cstr(), "member_epoch": r.i32(),
             "client_id": r.cstr(), "client_host": r.cstr(), "subscribed_topic_names": r.carr(r.cstr),
             "subscribed_topic_regex": r.cstr(), "assignment": assignment(), "target_assignment": assignment()}
        if version >= 1:
            m["member_type"] = r.i8()
        r.tags()
        return m

    def group():
        g = {"error_code": r.i16(), "error_message": r.cstr(), "group_id": r.cstr(), "group_state": r.cstr(),
             "group_epoch": r.i32(), "assignment_epoch": r.i32(), "assignor_name": r.cstr(),
             "members": r.carr(member), "authorized_operations": r.i32()}
        r.tags()
        return g

    return r.carr(group)


def describe_groups(bootstrap, groups, version=6, include_ops=True):
    assert version >= 5, "flexible versions only"
    r = call(bootstrap, 15, version, _carr([_cstr(g) for g in groups]) + (b"\x01" if include_ops else b"\x00") + b"\x00")
    r.i32()

    def member():
        m = {"member_id": r.cstr(), "group_instance_id": r.cstr(), "client_id": r.cstr(), "client_host": r.cstr(),
             "member_metadata": r.cbytes(), "member_assignment": r.cbytes()}
        r.tags()
        return m

    def group():
        g = {"error_code": r.i16()}
        if version >= 6:
            g["error_message"] = r.cstr()
        g.update({"group_id": r.cstr(), "group_state": r.cstr(), "protocol_type": r.cstr(),
                  "protocol_data": r.cstr(), "members": r.carr(member), "authorized_operations": r.i32()})
        r.tags()
        return g

    return r.carr(group)


def list_groups(bootstrap, states=(), types=()):
    """ListGroups v5: (error code, [groups])."""
    r = call(bootstrap, 16, 5, _carr([_cstr(s) for s in states]) + _carr([_cstr(t) for t in types]) + b"\x00")
    r.i32()
    err = r.i16()

    def group():
        g = {"group_id": r.cstr(), "protocol_type": r.cstr(), "group_state": r.cstr(), "group_type": r.cstr()}
        r.tags()
        return g

    return err, r.carr(group)


def describe_topic_partitions(bootstrap, topics, limit=2000, cursor=None):
    """DescribeTopicPartitions v0: (topics, next cursor or None)."""
    body = _carr([_cstr(t) + b"\x00" for t in topics]) + struct.pack(">i", limit)
    if cursor is None:
        body += b"\xff"
    else:
        body += b"\x01" + _cstr(cursor[0]) + struct.pack(">i", cursor[1]) + b"\x00"
    r = call(bootstrap, 75, 0, body + b"\x00")
    r.i32()

    def partition():
        p = {"error_code": r.i16(), "partition_index": r.i32(), "leader_id": r.i32(), "leader_epoch": r.i32(),
             "replica_nodes": r.carr(r.i32), "isr_nodes": r.carr(r.i32), "eligible_leader_replicas": r.carr(r.i32),
             "last_known_elr": r.carr(r.i32), "offline_replicas": r.carr(r.i32)}
        r.tags()
        return p

    def topic():
        t = {"error_code": r.i16(), "name": r.cstr(), "topic_id": r.uuid(), "is_internal": r.boolean(),
             "partitions": r.carr(partition), "topic_authorized_operations": r.i32()}
        r.tags()
        return t

    topics_out = r.carr(topic)
    next_cursor = None
    if r.i8() >= 0:
        next_cursor = (r.cstr(), r.i32())
        r.tags()
    return topics_out, next_cursor


def describe_acls_any(bootstrap):
    """DescribeAcls v3 matching every ACL: (error code, error message, resources)."""
    any_ = struct.pack(">b", 1)  # ANY
    body = any_ + _cstr(NULL) + struct.pack(">b", 1) + _cstr(NULL) + _cstr(NULL) + any_ + any_ + b"\x00"
    r = call(bootstrap, 29, 3, body)
    r.i32()
    err, msg = r.i16(), r.cstr()
    return err, msg, r.uvarint() - 1


def describe_cluster(bootstrap, endpoint_type=1, include_ops=False):
    """DescribeCluster v1: (error code, error message, endpoint type, controller id)."""
    body = (b"\x01" if include_ops else b"\x00") + struct.pack(">b", endpoint_type) + b"\x00"
    r = call(bootstrap, 60, 1, body)
    r.i32()
    err, msg, endpoint = r.i16(), r.cstr(), r.i8()
    r.cstr()
    return err, msg, endpoint, r.i32()


def describe_user_scram_credentials(bootstrap, users=NULL):
    """DescribeUserScramCredentials v0 (50); `users` a list of names, or NULL for all."""
    body = (_carr(NULL) if users is NULL else _carr([_cstr(u) + b"\x00" for u in users])) + b"\x00"
    r = call(bootstrap, 50, 0, body)
    r.i32()
    top = {"error_code": r.i16(), "error_message": r.cstr()}

    def info():
        i = {"mechanism": r.i8(), "iterations": r.i32()}
        r.tags()
        return i

    def result():
        u = {"user": r.cstr(), "error_code": r.i16(), "error_message": r.cstr(), "credential_infos": r.carr(info)}
        r.tags()
        return u

    top["results"] = r.carr(result)
    return top
