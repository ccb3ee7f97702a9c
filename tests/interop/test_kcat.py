"""kcat (librdkafka's CLI) against strom: metadata, produce, consume, codecs."""
import subprocess

import pytest


def kcat(broker, *args, input=None):
    r = subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=input, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def test_metadata_lists_broker_and_topics(broker):
    kcat(broker, "-P", "-t", "meta-topic", input=b"x\n")
    out = kcat(broker, "-L")
    assert f"broker 1 at {broker.bootstrap}" in out
    assert 'topic "meta-topic" with 1 partitions' in out


def test_produce_consume_keys_headers(broker):
    lines = b"".join(f"k{i}:value-{i}\n".encode() for i in range(100))
    kcat(broker, "-P", "-t", "kc", "-K:", "-H", "trace=abc", input=lines)
    out = kcat(broker, "-C", "-t", "kc", "-e", "-f", "%o|%k|%s|%h\n")
    rows = [l.split("|") for l in out.splitlines()]
    assert [r[0] for r in rows] == [str(i) for i in range(100)]
    assert rows[7][1:] == ["k7", "value-7", "trace=abc"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codecs_roundtrip(broker, codec):
    lines = b"".join(f"{codec}-{i}-{'x' * (i % 50)}\n".encode() for i in range(500))
    kcat(broker, "-P", "-t", f"z-{codec}", "-z", codec, input=lines)
    out = kcat(broker, "-C", "-t", f"z-{codec}", "-e", "-f", "%s\n")
    assert out.encode() == lines


def test_consume_from_offset_and_end(broker):
    kcat(broker, "-P", "-t", "off", input=b"".join(f"m{i}\n".encode() for i in range(10)))
    out = kcat(broker, "-C", "-t", "off", "-o", "7", "-e", "-f", "%o %s\n")
    assert out.splitlines() == ["7 m7", "8 m8", "9 m9"]
    out = kcat(broker, "-C", "-t", "off", "-o", "-2", "-e", "-f", "%s\n")
    assert out.splitlines() == ["m8", "m9"]
