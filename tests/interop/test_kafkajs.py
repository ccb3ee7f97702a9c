"""kafkajs against strom: the Node client produces, librdkafka reads back."""
import json
import os
import shutil
import subprocess

import pytest

from test_confluent import consume_all

NODE_DIR = os.path.join(os.path.dirname(__file__), "node")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_kafkajs_produce(broker):
    r = subprocess.run(["node", "produce.js", broker.bootstrap, "js", "1000"], cwd=NODE_DIR, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    assert json.loads(r.stdout)["offsets"] == [str(i) for i in range(0, 1000, 100)]
    got = consume_all(broker, "js", [0], 1000)
    assert [m.value().decode() for m in got] == [f"kafkajs-{i}" for i in range(1000)]
    assert got[5].headers() == [("src", b"kafkajs")]
