"""A bounded fuzz run over Produce record batches with correct CRCs.

Mutations go into the records (then framed by each codec) and into the
compressed payloads themselves, of batches built here and of batches
librdkafka compressed. Every mutant has its CRC recomputed, so only the
broker's record validation stands between it and the log. The broker must
answer each with success or one of Kafka's refusals, and every batch it
accepts must be read to the end of the partition by confluent-kafka and
kafka-python, which must agree on every record.

STROM_FUZZ_SEED reproduces a run; STROM_FUZZ_ROUNDS sets mutants per codec."""
import glob
import os
import random
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as wire
from yardstick import kafka_differs

SEED = int(os.environ.get("STROM_FUZZ_SEED", random.randrange(1 << 32)))
ROUNDS = int(os.environ.get("STROM_FUZZ_ROUNDS", "3000"))
CODECS = ("none", "gzip", "snappy", "snappy-xerial", "lz4", "zstd")
# Success, CORRUPT_MESSAGE, MESSAGE_TOO_LARGE, INVALID_TIMESTAMP, INVALID_RECORD.
ALLOWED = {0, 2, 10, 32, 87}


def random_section(rng):
    n = rng.randint(1, 8)
    out = b""
    for i in range(n):
        key = None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 10))
        value = None if rng.random() < 0.1 else rng.randbytes(rng.randint(0, 200))
        headers = [(f"h{j}-é".encode(), None if rng.random() < 0.3 else rng.randbytes(rng.randint(0, 8)))
                   for j in range(rng.randint(0, 2))]
        out += wire.record(i, key, value, headers, ts_delta=rng.randint(0, 50))
    return out, n


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not data:
            break
        i = rng.randrange(len(data))
        op = rng.random()
        if op < 0.45:
            data[i] ^= 1 << rng.randrange(8)
        elif op < 0.65:
            data[i] = rng.choice([0x00, 0x01, 0x7f, 0x80, 0xff, rng.randrange(256)])
        elif op < 0.75:
            data.insert(i, rng.randrange(256))
        elif op < 0.85:
            del data[i]
        elif op < 0.93:
            del data[i:]
        else:
            j = rng.randrange(len(data))
            data[i:i] = data[j:j + rng.randint(1, 16)]
    return bytes(data)


def librdkafka_seeds(broker, codec):
    """Batches librdkafka compressed, read back from the broker's log."""
    topic = f"seed-{codec}"
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "linger.ms": 50})
    for i in range(40):
        p.produce(topic, key=b"key-%d" % i if i % 3 else None, value=b"value %d " % i * (i % 7 + 1),
                  headers=[("h", b"x")] if i % 2 else None, partition=0)
    assert p.flush(30) == 0
    time.sleep(0.2)
    data = b"".join(open(f, "rb").read() for f in sorted(glob.glob(f"{broker.data_dir}/{topic}-0/*.log")))
    seeds = wire.split_batches(data)
    assert seeds, f"no {codec} batch in the seed topic's log"
    return seeds


@kafka_differs("Strom refuses (issue 25) batches no consumer could read; Kafka 4.4 accepts some of these "
               "mutants (for example records whose header bytes are broken), and librdkafka then fails to decode "
               "their headers (SystemError from Message.headers)")
def test_accepted_mutants_are_readable_by_every_client(broker):
    rng = random.Random(SEED)
    print(f"fuzz seed {SEED} (STROM_FUZZ_SEED={SEED} reproduces), {ROUNDS} mutants per codec")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for f in admin.create_topics([NewTopic(f"fuzz-{c}", 1, 1) for c in CODECS]).values():
        f.result(30)
    seeds = {c: librdkafka_seeds(broker, c) for c in ("gzip", "snappy", "lz4", "zstd")}
    conn = wire.RawConnection(broker.bootstrap)
    for codec in CODECS:
        base = codec.split("-")[0]
        topic, accepted, answers = f"fuzz-{codec}", 0, {}
        for _ in range(ROUNDS):
            now = int(time.time() * 1000)
            kind = rng.random()
            if base in seeds and kind < 0.3:
                seed = rng.choice(seeds[base])
                b = wire.reseal(seed[:61] + mutate(rng, seed[61:]))
            else:
                section, n = random_section(rng)
                count = n + (rng.choice([-1, 1]) if rng.random() < 0.05 else 0)
                if codec == "none" or kind < 0.65:
                    payload = wire.STORED[codec](mutate(rng, section))
                else:
                    payload = mutate(rng, wire.STORED[codec](section))
                b = wire.batch(payload, max(count, 1), wire.CODECS[base], now)
            err, _, _, message = conn.produce(topic, 0, b)
            assert err in ALLOWED, f"{codec}: error {err}: {message} (seed {SEED})"
            answers[err] = answers.get(err, 0) + 1
            if err == 0:
                accepted += int.from_bytes(b[57:61], "big")
        print(f"{codec}: {answers}, {accepted} records accepted")
        assert answers.get(0, 0) > 0 and len(answers) > 1, f"{codec}: a fuzz run with one outcome tests nothing"
        got = wire.confluent_read_to_end(broker.bootstrap, topic)
        assert [o for o, *_ in got] == list(range(accepted)), f"{codec} (seed {SEED})"
        if wire.kafka_python_reads(codec):
            assert wire.kafka_python_read(broker.bootstrap, topic, accepted) == got, f"{codec} (seed {SEED})"
    conn.close()
