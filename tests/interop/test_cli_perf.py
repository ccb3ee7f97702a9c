"""`strom perf`: the load it generates is real (kcat reads it back) and the
JSON summaries are complete. No timing is asserted."""
import json
import subprocess

from conftest import STROM


def perf(broker, *args):
    r = subprocess.run([STROM, "perf", "--bootstrap", broker.bootstrap, *args, "--json"], capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_produce_consume_e2e(broker):
    s = perf(broker, "produce", "--topic", "pp", "--records", "20000", "--record-size", "200", "--partitions", "3",
             "-X", "batch.size=65536", "-X", "compression.type=lz4")
    assert s["kind"] == "produce" and s["records"] == 20000 and s["bytes"] == 20000 * 200
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
    out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "pp", "-e", "-q", "-f", "%S\n"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    assert len(out) == 20000 and set(out) == {"200"}
    s = perf(broker, "consume", "--topic", "pp", "--records", "20000")
    assert s["records"] == 20000 and s["bytes"] == 20000 * 200 and s["latency_ms"] is None
    # At a fixed rate every acknowledgement is timed as it arrives.
    s = perf(broker, "produce", "--topic", "pr", "--records", "2000", "--rate", "4000", "-X", "linger.ms=0")
    assert s["records"] == 2000
    assert 0 < s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
    s = perf(broker, "e2e", "--topic", "pe", "--records", "1000", "--rate", "2000", "-X", "linger.ms=0",
             "-X", "fetch.max.wait.ms=100")
    assert s["records"] == 1000
    lat = s["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]


def test_bad_arguments(broker):
    r = subprocess.run([STROM, "perf", "--bootstrap", broker.bootstrap, "e2e", "--record-size", "4"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "at least 8" in r.stderr
    r = subprocess.run([STROM, "perf", "--bootstrap", broker.bootstrap, "produce", "--records", "1", "-X", "nope=1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "nope" in r.stderr


def test_refused_records_fail_the_run(broker):
    """Records the broker refuses fail the run with the broker's reason,
    also those whose acknowledgement the tool does not await one by one."""
    subprocess.run([STROM, "topics", "create", "tiny", "--partitions", "1", "--config", "max.message.bytes=1000",
                    "--bootstrap", broker.bootstrap], check=True, capture_output=True, timeout=60)
    r = subprocess.run([STROM, "perf", "--bootstrap", broker.bootstrap, "produce", "--topic", "tiny", "--records", "100",
                        "--record-size", "2000"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "not acknowledged" in r.stderr and "max.message.bytes" in r.stderr, r.stderr
