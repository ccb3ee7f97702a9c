"""SCRAM credentials (DescribeUserScramCredentials / AlterUserScramCredentials)
as Kafka 4.4 answers them on one node without a SASL listener: kept in the
metadata log, so they survive a restart. Through confluent-kafka's
AdminClient, Kafka's own `kafka-configs.sh --entity-type users`, and raw
requests for what the clients do not show (per-user error messages).
Each test passes against Kafka too (STROM_INTEROP_AGAINST=kafka)."""
import os
import subprocess

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

import admin_wire as wire

KAFKA = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "kafka")
RESOURCE_NOT_FOUND, DUPLICATE_RESOURCE, UNACCEPTABLE_CREDENTIAL = 91, 92, 93


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def upsert(user, mechanism, iterations, password=b"secret"):
    return UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, iterations), password)


def alter(a, changes):
    """Each user's outcome: None, or the Kafka error code."""
    out = {}
    for user, f in a.alter_user_scram_credentials(changes).items():
        try:
            f.result(30)
            out[user] = None
        except KafkaException as e:
            out[user] = e.args[0].code()
    return out


def described(a):
    return {user: sorted((i.mechanism, i.iterations) for i in d.scram_credential_infos)
            for user, d in a.describe_user_scram_credentials().result(30).items()}


def test_credentials_are_set_described_deleted_and_survive_a_restart(broker):
    a = admin(broker)
    assert described(a) == {}
    got = alter(a, [upsert("alice", ScramMechanism.SCRAM_SHA_256, 8192),
                    upsert("bob", ScramMechanism.SCRAM_SHA_512, 4096)])
    assert got == {"alice": None, "bob": None}
    assert alter(a, [upsert("alice", ScramMechanism.SCRAM_SHA_512, 10000)]) == {"alice": None}
    want = {"alice": [(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 10000)],
            "bob": [(ScramMechanism.SCRAM_SHA_512, 4096)]}
    assert described(a) == want
    # A new password replaces the mechanism's credential.
    assert alter(a, [upsert("bob", ScramMechanism.SCRAM_SHA_512, 5000, b"other")]) == {"bob": None}
    want["bob"] = [(ScramMechanism.SCRAM_SHA_512, 5000)]
    broker.stop()
    broker.restart()
    a = admin(broker)
    assert described(a) == want
    deleted = alter(a, [UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_512)])
    assert deleted == {"bob": None}
    assert described(a) == {"alice": want["alice"]}


def test_bad_changes_get_kafkas_codes_and_the_good_ones_in_the_request_apply(broker):
    a = admin(broker)
    got = alter(a, [upsert("few", ScramMechanism.SCRAM_SHA_256, 1024),
                    upsert("many", ScramMechanism.SCRAM_SHA_256, 16385),
                    UserScramCredentialDeletion("ghost", ScramMechanism.SCRAM_SHA_256),
                    upsert("twice", ScramMechanism.SCRAM_SHA_256, 4096),
                    upsert("twice", ScramMechanism.SCRAM_SHA_512, 4096),
                    upsert("fine", ScramMechanism.SCRAM_SHA_256, 16384)])
    assert got == {"few": UNACCEPTABLE_CREDENTIAL, "many": UNACCEPTABLE_CREDENTIAL, "ghost": RESOURCE_NOT_FOUND,
                   "twice": DUPLICATE_RESOURCE, "fine": None}
    assert described(a) == {"fine": [(ScramMechanism.SCRAM_SHA_256, 16384)]}
    # A user with no credential, named: the admin client raises for it.
    with pytest.raises(KafkaException) as e:
        a.describe_user_scram_credentials(["nobody"])["nobody"].result(30)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND


def test_raw_describe_answers_each_named_user_once_with_kafkas_messages(broker):
    alter(admin(broker), [upsert("carol", ScramMechanism.SCRAM_SHA_256, 4096)])
    r = wire.describe_user_scram_credentials(broker.bootstrap, ["carol", "dave", "dave"])
    assert r["error_code"] == 0
    by_user = {u["user"]: u for u in r["results"]}
    assert sorted(by_user) == ["carol", "dave"]
    assert by_user["carol"]["error_code"] == 0
    assert by_user["carol"]["credential_infos"] == [{"mechanism": 1, "iterations": 4096}]
    assert by_user["dave"]["error_code"] == DUPLICATE_RESOURCE
    assert by_user["dave"]["error_message"] == (
        "Cannot describe SCRAM credentials for the same user twice in a single request: dave")
    r = wire.describe_user_scram_credentials(broker.bootstrap, ["erin"])
    assert r["results"] == [{"user": "erin", "error_code": RESOURCE_NOT_FOUND, "credential_infos": [],
                             "error_message": "Attempt to describe a user credential that does not exist: erin"}]
    # Null and empty both mean every user.
    assert [u["user"] for u in wire.describe_user_scram_credentials(broker.bootstrap)["results"]] == ["carol"]
    assert [u["user"] for u in wire.describe_user_scram_credentials(broker.bootstrap, [])["results"]] == ["carol"]


def test_kafka_configs_sets_and_describes_user_credentials(broker):
    subprocess.run([KAFKA, "install"], check=True)
    env = {**os.environ, "KAFKA_JVM_PERFORMANCE_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"}

    def tool(*args):
        r = subprocess.run([KAFKA, "tool", "kafka-configs", "--bootstrap-server", broker.bootstrap,
                            "--entity-type", "users", *args], capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr + r.stdout
        return r.stdout

    out = tool("--entity-name", "alice", "--alter", "--add-config", "SCRAM-SHA-256=[iterations=8192,password=alice-secret]")
    assert "Completed updating config for user alice." in out, out
    # One request may change a user once: two mechanisms at once are refused, as Kafka does.
    tool("--entity-name", "alice", "--alter", "--add-config", "SCRAM-SHA-512=[password=x]")
    # (The tool's --describe of users also asks for client quotas, which
    # Strom does not serve yet; the admin client reads the credentials.)
    assert described(admin(broker)) == {
        "alice": [(ScramMechanism.SCRAM_SHA_256, 8192), (ScramMechanism.SCRAM_SHA_512, 4096)]}
    tool("--entity-name", "alice", "--alter", "--delete-config", "SCRAM-SHA-512")
    assert described(admin(broker)) == {"alice": [(ScramMechanism.SCRAM_SHA_256, 8192)]}
