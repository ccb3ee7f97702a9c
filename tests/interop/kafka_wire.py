"""Kafka wire pieces for tests that must send what no client would: record
batches built by hand (any bytes, a correct CRC), the payload framings of
each codec written without compression (so the records inside can be
anything), and raw Produce requests over a socket.

Used by test_poison_batches.py and test_poison_fuzz.py."""
import socket
import struct
import time
import zlib

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from kafka import codec as codec_lib
from kafka.record.util import calc_crc32c

CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def kafka_python_reads(codec):
    """kafka-python decodes these codecs only with optional libraries installed."""
    return {"none": True, "gzip": True, "snappy": codec_lib.has_snappy(), "snappy-xerial": codec_lib.has_snappy(),
            "lz4": codec_lib.has_lz4(), "zstd": codec_lib.has_zstd()}[codec]


def confluent_read_to_end(bootstrap, topic, timeout=60):
    """(offset, key, value, headers) of every record until the end of
    partition 0; fails on any consumer error or a stall."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "poison", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out, deadline = [], time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error() is not None:
                assert m.error().code() == KafkaError._PARTITION_EOF, f"{topic}: {m.error()}"
                return out
            out.append((m.offset(), m.key(), m.value(), list(m.headers() or [])))
        raise AssertionError(f"{topic}: no end of partition after {len(out)} records")
    finally:
        c.close()


def kafka_python_read(bootstrap, topic, expected):
    """The first `expected` records of partition 0 as kafka-python reads them."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=10000)
    tp = KpTopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    out = []
    for m in c:
        out.append((m.offset, m.key, m.value, list(m.headers)))
        if len(out) == expected:
            break
    c.close()
    return out


# ---------------------------------------------------------------- records

def varint(v):
    """A zigzag varint, as Kafka's records use."""
    return _uvarint(((v << 1) ^ (v >> 63)) & ((1 << 64) - 1))


def nbytes(b):
    return varint(-1) if b is None else varint(len(b)) + b


def record(offset_delta, key, value, headers=(), ts_delta=0):
    body = b"\x00" + varint(ts_delta) + varint(offset_delta) + nbytes(key) + nbytes(value)
    body += varint(len(headers)) + b"".join(nbytes(k) + nbytes(v) for k, v in headers)
    return varint(len(body)) + body


def batch(payload, count, attributes, base_ts, producer_id=-1, base_sequence=-1):
    """A v2 batch around an encoded (maybe compressed) records section, CRC correct."""
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, base_ts, base_ts, producer_id, -1,
                            base_sequence, count) + payload
    crc = calc_crc32c(memoryview(after_crc))
    return struct.pack(">qiibI", 0, 9 + len(after_crc), 0, 2, crc) + after_crc


def reseal(b):
    """Recomputes length and CRC of a batch whose bytes were changed."""
    b = bytearray(b)
    b[8:12] = struct.pack(">i", len(b) - 12)
    b[17:21] = struct.pack(">I", calc_crc32c(memoryview(bytes(b[21:]))))
    return bytes(b)


def split_batches(data):
    """The whole batches in a log segment's bytes."""
    out, pos = [], 0
    while pos + 12 <= len(data):
        n = struct.unpack(">i", data[pos + 8:pos + 12])[0] + 12
        if n < 61 or pos + n > len(data):
            break
        out.append(data[pos:pos + n])
        pos += n
    return out


# ---------------------------------------------------------------- codecs, stored (no compression)

def _uvarint(u):
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def snappy_raw(data):
    """Raw snappy made of literals only: valid, and the bytes stay visible."""
    out = bytearray(_uvarint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        out += bytes([61 << 2]) + struct.pack("<H", len(chunk) - 1) + chunk
    return bytes(out)


def snappy_xerial(data):
    """Xerial framing (what the Java client writes) of literal-only blocks."""
    out = bytearray(b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1))
    for i in range(0, max(len(data), 1), 32768):
        block = snappy_raw(data[i:i + 32768])
        out += struct.pack(">i", len(block)) + block
    return bytes(out)


_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M = 0xFFFFFFFF


def _rotl(x, r):
    return ((x << r) | (x >> (32 - r))) & _M


def xxh32(data, seed=0):
    """xxHash32, for the lz4 frame's header checksum."""
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M, (seed + _P2) & _M, seed & _M, (seed - _P1) & _M]
        while i + 16 <= n:
            for j in range(4):
                lane = struct.unpack_from("<I", data, i + 4 * j)[0]
                v[j] = (_rotl((v[j] + lane * _P2) & _M, 13) * _P1) & _M
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M
    else:
        h = (seed + _P5) & _M
    h = (h + n) & _M
    while i + 4 <= n:
        h = (_rotl((h + struct.unpack_from("<I", data, i)[0] * _P3) & _M, 17) * _P4) & _M
        i += 4
    while i < n:
        h = (_rotl((h + data[i] * _P5) & _M, 11) * _P1) & _M
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M
    h ^= h >> 13
    h = (h * _P3) & _M
    return h ^ (h >> 16)


def lz4_frame(data):
    """An lz4 frame (version 1, independent 64 KiB blocks) of stored blocks."""
    desc = bytes([0x60, 0x40])
    out = bytearray(b"\x04\x22\x4d\x18" + desc + bytes([(xxh32(desc) >> 8) & 0xFF]))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        out += struct.pack("<I", len(chunk) | 0x80000000) + chunk
    return bytes(out + b"\x00\x00\x00\x00")


def zstd_frame(data):
    """A zstd frame of raw blocks, with its content size."""
    out = bytearray(b"\x28\xb5\x2f\xfd" + bytes([0xA0]) + struct.pack("<I", len(data)))
    blocks = [data[i:i + 131072] for i in range(0, len(data), 131072)] or [b""]
    for n, block in enumerate(blocks):
        last = 1 if n == len(blocks) - 1 else 0
        out += struct.pack("<I", (len(block) << 3) | last)[:3] + block
    return bytes(out)


def gzip_member(data):
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


STORED = {"none": lambda d: d, "gzip": gzip_member, "snappy": snappy_raw, "snappy-xerial": snappy_xerial,
          "lz4": lz4_frame, "zstd": zstd_frame}


# ---------------------------------------------------------------- Produce over a socket

def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class RawConnection:
    """One socket speaking Produce v8 (non-flexible: record_errors and error_message exist from v8)."""

    def __init__(self, bootstrap):
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.corr = 0

    def close(self):
        self.sock.close()

    def send_frame(self, frame):
        self.sock.sendall(frame)
        return self._read_frame()

    def _read_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return bytes(buf)

    def _read_frame(self):
        n = struct.unpack(">i", self._read_exact(4))[0]
        return self._read_exact(n)

    def produce(self, topic, partition, records, acks=-1):
        """Sends one partition's records; returns (error_code, base_offset, record_errors, error_message)."""
        self.corr += 1
        body = struct.pack(">hhi", 0, 8, self.corr) + _str("poison-test")
        body += struct.pack(">hhi", -1, acks, 10000)
        body += struct.pack(">i", 1) + _str(topic) + struct.pack(">i", 1)
        body += struct.pack(">ii", partition, len(records)) + records
        resp = self.send_frame(struct.pack(">i", len(body)) + body)
        return parse_produce_v8(resp)


def parse_produce_v8(resp):
    pos = 4  # correlation id

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, resp, pos)
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        (n,) = take(">h")
        if n < 0:
            return None
        s = resp[pos:pos + n].decode()
        pos += n
        return s

    (topics,) = take(">i")
    assert topics == 1, topics
    string()
    (parts,) = take(">i")
    assert parts == 1, parts
    _, error, base_offset, _, _ = take(">ihqqq")
    (n,) = take(">i")
    record_errors = []
    for _ in range(max(n, 0)):
        (index,) = take(">i")
        record_errors.append((index, string()))
    return error, base_offset, record_errors, string()


def produce_v9_frame_error(bootstrap, frame):
    """Sends a complete Produce v9 frame (flexible) and returns the one
    partition's error code."""
    conn = RawConnection(bootstrap)
    try:
        resp = conn.send_frame(frame)
    finally:
        conn.close()
    # v9 response: correlation id, header tags, compact array of topics,
    # compact string name, compact array of partitions, index, error code.
    pos = 4 + 1 + 1
    name_len = resp[pos] - 1
    pos += 1 + name_len + 1
    return struct.unpack_from(">h", resp, pos + 4)[0]


# ---------------------------------------------------------------- admin frames (test_hostile_admin.py)

def _compact_str(s):
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def create_topics_v7_frame(topics, correlation_id=1, timeout_ms=37500, validate_only=False):
    """A CreateTopics v7 frame (flexible) creating (name, partitions) topics with replication factor 1."""
    body = struct.pack(">hhi", 19, 7, correlation_id) + _str("fuzz") + b"\x00"
    body += _uvarint(len(topics) + 1)
    for name, partitions in topics:
        body += _compact_str(name) + struct.pack(">ih", partitions, 1) + b"\x01\x01\x00"
    body += struct.pack(">i?", timeout_ms, validate_only) + b"\x00"
    return struct.pack(">i", len(body)) + body


def _read_uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def parse_create_topics_v7(resp):
    """[(name, error_code, error_message)] of a CreateTopics v5+ response."""
    pos = 4  # correlation id
    _, pos = _read_uvarint(resp, pos)  # header tags
    pos += 4  # throttle time
    n, pos = _read_uvarint(resp, pos)
    out = []
    for _ in range(n - 1):
        ln, pos = _read_uvarint(resp, pos)
        name = resp[pos:pos + ln - 1].decode()
        pos += ln - 1 + 16  # name, topic id
        (error,) = struct.unpack_from(">h", resp, pos)
        pos += 2
        ln, pos = _read_uvarint(resp, pos)
        message = None if ln == 0 else resp[pos:pos + ln - 1].decode()
        pos += max(ln - 1, 0)
        pos += 4 + 2  # partitions, replication factor
        configs, pos = _read_uvarint(resp, pos)
        for _ in range(max(configs - 1, 0)):
            for _ in range(2):  # name, value
                ln, pos = _read_uvarint(resp, pos)
                pos += max(ln - 1, 0)
            pos += 1 + 1 + 1  # read_only, config_source, is_sensitive
            tags, pos = _read_uvarint(resp, pos)
        _, pos = _read_uvarint(resp, pos)  # topic tags
        out.append((name, error, message))
    return out


def api_versions_latency(bootstrap, timeout=10):
    """Seconds an ApiVersions v0 on a fresh connection takes to be answered."""
    t = time.monotonic()
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        body = struct.pack(">hhi", 18, 0, 1) + _str("probe")
        s.sendall(struct.pack(">i", len(body)) + body)
        conn = RawConnection.__new__(RawConnection)
        conn.sock = s
        resp = conn._read_frame()
        assert struct.unpack_from(">h", resp, 4)[0] == 0
    return time.monotonic() - t


def init_producer_id(bootstrap):
    """A producer id from InitProducerId v0 (idempotent, no transactional id)."""
    conn = RawConnection(bootstrap)
    try:
        body = struct.pack(">hhi", 22, 0, 1) + _str("pid-test") + struct.pack(">hi", -1, 60000)
        resp = conn.send_frame(struct.pack(">i", len(body)) + body)
    finally:
        conn.close()
    _, _, error, producer_id, _ = struct.unpack_from(">iihqh", resp, 0)
    assert error == 0, error
    return producer_id


# ---------------------------------------------------------------- groups of any protocol type (test_kafka_connect.py)

class _Reader:
    """Reads the non-flexible types of a response body."""

    def __init__(self, buf, pos=0):
        self.buf, self.pos = buf, pos

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.buf[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def bytes(self):
        n = self.take(">i")
        if n < 0:
            return None
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b


def describe_group_v0(bootstrap, group):
    """DescribeGroups v0 of one group on a one-broker cluster: a dict of error,
    state, protocol_type, protocol and members (member_id, client_id, client_host,
    metadata, assignment), whatever the protocol type (kafka-python 2.3 and
    librdkafka decode consumer groups only)."""
    conn = RawConnection(bootstrap)
    try:
        body = struct.pack(">hhi", 15, 0, 1) + _str("group-test") + struct.pack(">i", 1) + _str(group)
        r = _Reader(conn.send_frame(struct.pack(">i", len(body)) + body), 4)
    finally:
        conn.close()
    assert r.take(">i") == 1
    g = {"error": r.take(">h"), "group_id": r.string(), "state": r.string(), "protocol_type": r.string(),
         "protocol": r.string(), "members": []}
    for _ in range(r.take(">i")):
        g["members"].append({"member_id": r.string(), "client_id": r.string(), "client_host": r.string(),
                             "metadata": r.bytes(), "assignment": r.bytes()})
    return g


def list_groups_v0(bootstrap):
    """ListGroups v0: {group id: protocol type}."""
    conn = RawConnection(bootstrap)
    try:
        body = struct.pack(">hhi", 16, 0, 1) + _str("group-test")
        r = _Reader(conn.send_frame(struct.pack(">i", len(body)) + body), 4)
    finally:
        conn.close()
    assert r.take(">h") == 0
    return {r.string(): r.string() for _ in range(r.take(">i"))}


def find_coordinator_v1(bootstrap, key, key_type=0):
    """FindCoordinator v1 (0: a group, 1: a transactional id): (error, node id, host, port)."""
    conn = RawConnection(bootstrap)
    try:
        body = struct.pack(">hhi", 10, 1, 1) + _str("coordinator-test") + _str(key) + struct.pack(">b", key_type)
        r = _Reader(conn.send_frame(struct.pack(">i", len(body)) + body), 4)
    finally:
        conn.close()
    r.take(">i")  # throttle
    error = r.take(">h")
    r.string()  # message
    return error, r.take(">i"), r.string(), r.take(">i")


# ---------------------------------------------------------------- OffsetForLeaderEpoch (test_replication.py)

def offset_for_leader_epoch_v3(bootstrap, topic, partition, leader_epoch, current_leader_epoch=-1):
    """OffsetForLeaderEpoch v3 (the last non-flexible version) for one
    partition, as a consumer asks it (replica id -1): (error code, leader
    epoch, end offset)."""
    conn = RawConnection(bootstrap)
    try:
        body = struct.pack(">hhi", 23, 3, 1) + _str("epoch-test")
        body += struct.pack(">i", -1) + struct.pack(">i", 1) + _str(topic)
        body += struct.pack(">i", 1) + struct.pack(">iii", partition, current_leader_epoch, leader_epoch)
        r = _Reader(conn.send_frame(struct.pack(">i", len(body)) + body), 4)
    finally:
        conn.close()
    r.take(">i")  # throttle time
    assert r.take(">i") == 1 and r.string() == topic
    assert r.take(">i") == 1
    error, index, epoch, end = r.take(">h"), r.take(">i"), r.take(">i"), r.take(">q")
    assert index == partition
    return error, epoch, end
