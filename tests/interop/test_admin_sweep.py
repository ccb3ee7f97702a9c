"""Every admin method of confluent-kafka's AdminClient (2.16) and kafka-python's
KafkaAdminClient (2.3.3 and 3.0.12), and the consumer's offset and assignment
calls, against one broker, with the answers Kafka 4.4 gives on one node (no
authorizer, no SCRAM listener): KIP-848 groups through ConsumerGroupDescribe,
DescribeGroups v6 and ListGroups v5 group types; DescribeTopicPartitions with
its cursor; ElectLeaders, partition reassignments, ACLs (SECURITY_DISABLED),
authorized operations, offsets, records and log dirs.

Answers the clients do not show in full (error messages, ELR lists, member
epochs) are read with raw requests (admin_wire). Each test passes against
Kafka too (STROM_INTEROP_AGAINST=kafka); docs/COMPATIBILITY.md has the table.
"""
import time

import pytest
from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType,
                             ElectionType, IsolationLevel, KafkaError, KafkaException, Producer, TopicCollection,
                             TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   NewPartitions, NewTopic, OffsetSpec, ResourcePatternType, ResourceType)

import admin_wire as wire
from yardstick import kafka_differs, settle

FAST = ["group.initial.rebalance.delay.ms=0"]
# Kafka's authorized-operation bit sets with no authorizer: every operation of the resource type.
TOPIC_OPS, GROUP_OPS, CLUSTER_OPS = 3576, 3400, 8096
OMITTED = -2147483648
GROUP_ID_NOT_FOUND, INVALID_GROUP_ID, INVALID_REQUEST = 69, 24, 42


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, topics):
    """Creates {name: partitions} and waits until every broker view has them."""
    a = admin(broker)
    for f in a.create_topics([NewTopic(t, n, 1) for t, n in topics.items()]).values():
        f.result(30)
    settle(lambda: wire.describe_topic_partitions(broker.bootstrap, list(topics))[0],
           lambda ts: all(t["error_code"] == 0 for t in ts) and len(ts) == len(topics))
    return a


def produce(broker, topic, per_partition, partitions, ts0=1000):
    p = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    for i in range(per_partition * partitions):
        p.produce(topic, b"v%d" % i, partition=i % partitions, timestamp=ts0 + i)
    assert p.flush(30) == 0


def assigned(consumer, n, timeout=30):
    deadline = time.time() + timeout
    while len(consumer.assignment()) < n:
        assert time.time() < deadline, f"assignment {consumer.assignment()} never reached {n} partitions"
        consumer.poll(0.2)


def tps(assignment):
    return sorted((t["topic"], p) for t in assignment for p in t["partitions"])


def test_kip848_groups_through_consumer_group_describe(make_broker):
    b = make_broker(FAST)
    create(b, {"cgd": 3})
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cgd-848", "group.protocol": "consumer",
                  "client.id": "cgd-client"})
    c.subscribe(["cgd"])
    cc = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cgd-classic", "client.id": "classic-client"})
    cc.subscribe(["cgd"])
    try:
        assigned(c, 3)
        assigned(cc, 3)
        # ConsumerGroupDescribe: invalid ids first, then each group; unknown and classic groups refused.
        groups = wire.consumer_group_describe(b.bootstrap, ["cgd-848", "cgd-classic", "cgd-none", ""])
        by_id = {g["group_id"]: g for g in groups}
        assert groups[0]["group_id"] == "" and groups[0]["error_code"] == INVALID_GROUP_ID
        assert (by_id["cgd-none"]["error_code"], by_id["cgd-none"]["error_message"]) == (
            GROUP_ID_NOT_FOUND, "Group cgd-none not found.")
        assert (by_id["cgd-classic"]["error_code"], by_id["cgd-classic"]["error_message"]) == (
            GROUP_ID_NOT_FOUND, "Group cgd-classic is not a consumer group.")
        g = settle(lambda: wire.consumer_group_describe(b.bootstrap, ["cgd-848"])[0],
                   lambda g: g["group_state"] == "Stable")
        assert (g["error_code"], g["error_message"], g["group_state"], g["assignor_name"]) == (0, None, "Stable", "uniform")
        assert g["group_epoch"] >= 1 and g["assignment_epoch"] == g["group_epoch"]
        assert g["authorized_operations"] == GROUP_OPS
        [m] = g["members"]
        assert m["member_epoch"] == g["group_epoch"] and m["member_type"] == 1
        assert (m["client_id"], m["client_host"], m["instance_id"], m["rack_id"]) == (
            "cgd-client", "/127.0.0.1", None, None)
        assert (m["subscribed_topic_names"], m["subscribed_topic_regex"]) == (["cgd"], "")
        assert tps(m["assignment"]) == tps(m["target_assignment"]) == [("cgd", 0), ("cgd", 1), ("cgd", 2)]
        assert wire.consumer_group_describe(b.bootstrap, ["cgd-848"], version=0, include_ops=False)[0][
            "authorized_operations"] == OMITTED

        # confluent-kafka's describe_consumer_groups tells the two kinds apart.
        a = admin(b)
        fs = a.describe_consumer_groups(["cgd-848", "cgd-classic", "cgd-none"], include_authorized_operations=True)
        d = {k: f.result(30) for k, f in fs.items()}
        assert (d["cgd-848"].type, d["cgd-848"].state, d["cgd-848"].partition_assignor) == (
            ConsumerGroupType.CONSUMER, ConsumerGroupState.STABLE, "uniform")
        [m] = d["cgd-848"].members
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1, 2]
        assert sorted(tp.partition for tp in m.target_assignment.topic_partitions) == [0, 1, 2]
        assert (d["cgd-classic"].type, d["cgd-classic"].state, d["cgd-classic"].partition_assignor) == (
            ConsumerGroupType.CLASSIC, ConsumerGroupState.STABLE, "range")
        [m] = d["cgd-classic"].members
        assert m.client_id == "classic-client" and m.target_assignment is None
        assert sorted(tp.partition for tp in m.assignment.topic_partitions) == [0, 1, 2]
        assert AclOperation.DELETE in d["cgd-classic"].authorized_operations
        assert d["cgd-none"].state == ConsumerGroupState.DEAD

        # DescribeGroups: a KIP-848 group is Dead to v5, GROUP_ID_NOT_FOUND with Kafka's message at v6.
        v5 = {g["group_id"]: g for g in wire.describe_groups(b.bootstrap, ["cgd-848", "cgd-none", "cgd-classic"], 5)}
        assert (v5["cgd-848"]["error_code"], v5["cgd-848"]["group_state"]) == (0, "Dead")
        assert (v5["cgd-none"]["error_code"], v5["cgd-none"]["group_state"]) == (0, "Dead")
        assert v5["cgd-none"]["authorized_operations"] == GROUP_OPS
        v6 = {g["group_id"]: g for g in wire.describe_groups(b.bootstrap, ["cgd-848", "cgd-none", "cgd-classic"], 6)}
        assert (v6["cgd-848"]["error_code"], v6["cgd-848"]["error_message"]) == (
            GROUP_ID_NOT_FOUND, "Group cgd-848 is not a classic group.")
        assert (v6["cgd-none"]["error_code"], v6["cgd-none"]["error_message"], v6["cgd-none"]["group_state"]) == (
            GROUP_ID_NOT_FOUND, "Group cgd-none not found.", "Dead")
        assert v6["cgd-none"]["authorized_operations"] == OMITTED
        classic = v6["cgd-classic"]
        assert (classic["error_code"], classic["group_state"], classic["protocol_type"], classic["protocol_data"]) == (
            0, "Stable", "consumer", "range")
        assert classic["authorized_operations"] == GROUP_OPS and classic["members"][0]["member_assignment"]

        # ListGroups v5: group types, filters case-insensitive as in Kafka.
        err, listed = wire.list_groups(b.bootstrap)
        kinds = {g["group_id"]: (g["group_type"], g["protocol_type"], g["group_state"]) for g in listed}
        assert err == 0 and kinds["cgd-848"] == ("consumer", "consumer", "Stable")
        assert kinds["cgd-classic"] == ("classic", "consumer", "Stable")
        assert [g["group_id"] for g in wire.list_groups(b.bootstrap, types=["Consumer"])[1]] == ["cgd-848"]
        assert [g["group_id"] for g in wire.list_groups(b.bootstrap, types=["classic"])[1]] == ["cgd-classic"]
        assert wire.list_groups(b.bootstrap, types=["bogus"]) == (0, [])
        assert wire.list_groups(b.bootstrap, states=["bogus"]) == (0, [])
        only = a.list_consumer_groups(types={ConsumerGroupType.CONSUMER}).result(30)
        assert [(g.group_id, g.type) for g in only.valid] == [("cgd-848", ConsumerGroupType.CONSUMER)]
        stable = a.list_consumer_groups(states={ConsumerGroupState.STABLE}).result(30)
        assert sorted(g.group_id for g in stable.valid) == ["cgd-848", "cgd-classic"]

        # Admin commits to groups with members are refused; so is deleting them.
        for group in ("cgd-848", "cgd-classic"):
            r = a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition("cgd", 0, 1)])])
            [tp] = r[group].result(30).topic_partitions
            assert tp.error is not None and tp.error.code() == KafkaError.UNKNOWN_MEMBER_ID
            with pytest.raises(KafkaException) as e:
                a.delete_consumer_groups([group])[group].result(30)
            assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    finally:
        c.close()
        cc.close()
    # Once its member leaves, the KIP-848 group is Empty and still a consumer group.
    g = settle(lambda: wire.consumer_group_describe(b.bootstrap, ["cgd-848"])[0],
               lambda g: g["group_state"] == "Empty")
    assert (g["error_code"], g["members"]) == (0, [])
    assert wire.describe_groups(b.bootstrap, ["cgd-848"])[0]["error_code"] == GROUP_ID_NOT_FOUND


def test_describe_topic_partitions_pages_with_a_cursor(make_broker):
    b = make_broker()
    create(b, {"dtp-a": 3, "dtp-b": 2, "dtp-c": 1})
    bs = b.bootstrap
    topics, cursor = wire.describe_topic_partitions(bs, ["dtp-c", "dtp-zz", "dtp-a", "dtp-!", "dtp-b", "dtp-a"])
    assert cursor is None
    # Sorted by name, each once; unknown and invalid names answered with their errors.
    assert [(t["name"], t["error_code"]) for t in topics] == [
        ("dtp-!", 17), ("dtp-a", 0), ("dtp-b", 0), ("dtp-c", 0), ("dtp-zz", 3)]
    for t in topics[1:4]:
        assert t["topic_id"] != "0" * 32 and not t["is_internal"] and t["topic_authorized_operations"] == TOPIC_OPS
        for p in t["partitions"]:
            leader = p["leader_id"]
            assert p["error_code"] == 0 and p["leader_epoch"] >= 0
            assert p["replica_nodes"] == p["isr_nodes"] == [leader]
            # One node: no eligible leader replicas, but empty lists, not null.
            assert p["eligible_leader_replicas"] == p["last_known_elr"] == p["offline_replicas"] == []
    assert [len(t["partitions"]) for t in topics] == [0, 3, 2, 1, 0]
    assert topics[4]["topic_id"] == "0" * 32 and topics[4]["partitions"] == []

    # Two partitions a page: the cursor names the first partition left out.
    names = ["dtp-a", "dtp-b", "dtp-c"]
    pages, cursor, seen = [], None, []
    while True:
        topics, cursor = wire.describe_topic_partitions(bs, names, limit=2, cursor=cursor)
        pages.append([(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in topics])
        seen += [(t["name"], p["partition_index"]) for t in topics for p in t["partitions"]]
        if cursor is None:
            break
        assert len(pages) < 10
    assert pages == [[("dtp-a", [0, 1])], [("dtp-a", [2]), ("dtp-b", [0])], [("dtp-b", [1]), ("dtp-c", [0])]]
    assert len(seen) == len(set(seen)) == 6
    # A page that ends with a topic points at the next topic's partition 0.
    assert wire.describe_topic_partitions(bs, ["dtp-a", "dtp-b"], limit=3)[1] == ("dtp-b", 0)
    # A limit under 1 serves one partition.
    topics, cursor = wire.describe_topic_partitions(bs, ["dtp-a"], limit=0)
    assert [len(t["partitions"]) for t in topics] == [1] and cursor == ("dtp-a", 1)
    # The cursor's topic must be among those named, and its partition valid.
    for bad in [(["dtp-a"], ("dtp-b", 0)), (["dtp-a", "dtp-b"], ("dtp-b", -1))]:
        topics, cursor = wire.describe_topic_partitions(bs, bad[0], cursor=bad[1])
        assert [(t["name"], t["error_code"], t["topic_authorized_operations"]) for t in topics] == [
            (n, INVALID_REQUEST, OMITTED) for n in bad[0]]
    # No topics named: all of them (unknown names cannot appear), from the cursor on.
    topics, _ = wire.describe_topic_partitions(bs, [], cursor=("dtp-b", 1))
    listed = [(t["name"], len(t["partitions"])) for t in topics]
    assert listed[:2] == [("dtp-b", 1), ("dtp-c", 1)] and all(n > "dtp-b" or n == "dtp-b" for n, _ in listed)


def test_confluent_admin_sweep(make_broker):
    b = make_broker(FAST)
    a = create(b, {"sweep": 3})
    produce(b, "sweep", 4, 3)

    # Topics, partitions, cluster.
    d = a.describe_topics(TopicCollection(["sweep"]), include_authorized_operations=True)["sweep"].result(30)
    assert [p.id for p in d.partitions] == [0, 1, 2] and not d.is_internal
    assert set(d.authorized_operations) == {
        AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DELETE, AclOperation.ALTER,
        AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    assert a.describe_topics(TopicCollection(["sweep"]))["sweep"].result(30).authorized_operations is None
    assert all(p.leader.id == p.replicas[0].id == p.isr[0].id for p in d.partitions)
    with pytest.raises(KafkaException) as e:
        a.describe_topics(TopicCollection(["sweep-none"]))["sweep-none"].result(30)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
    a.create_partitions([NewPartitions("sweep", 4)])["sweep"].result(30)
    settle(lambda: len(a.list_topics("sweep", timeout=10).topics["sweep"].partitions), lambda n: n == 4)
    cluster = a.describe_cluster(include_authorized_operations=True).result(30)
    assert cluster.controller.id == cluster.nodes[0].id and len(cluster.nodes) == 1 and cluster.cluster_id
    assert set(cluster.authorized_operations) == {
        AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE}
    assert a.describe_cluster().result(30).authorized_operations is None
    # This node is a broker endpoint: Kafka's errors for controllers and unknown endpoint types.
    assert wire.describe_cluster(b.bootstrap, 1)[:3] == (0, None, 1)
    assert wire.describe_cluster(b.bootstrap, 2) == (114, "The request was sent to an endpoint of type BROKER, "
                                                          "but we wanted an endpoint of type CONTROLLER", 1, -1)
    assert wire.describe_cluster(b.bootstrap, 3) == (115, "Unsupported endpoint type 3", 1, -1)

    # ListOffsets with every spec, then DeleteRecords moves the earliest offset.
    tp = lambda p: TopicPartition("sweep", p)  # noqa: E731
    got = {k.partition: v.result(30) for k, v in a.list_offsets({
        tp(0): OffsetSpec.earliest(), tp(1): OffsetSpec.latest(), tp(2): OffsetSpec.for_timestamp(1005),
    }, isolation_level=IsolationLevel.READ_COMMITTED).items()}
    assert (got[0].offset, got[1].offset, got[2].offset) == (0, 4, 1)
    assert got[2].timestamp == 1005
    mx = a.list_offsets({tp(0): OffsetSpec.max_timestamp()})[tp(0)].result(30)
    assert (mx.offset, mx.timestamp) == (3, 1009)
    deleted = a.delete_records([TopicPartition("sweep", 0, 2)])
    assert [f.result(30).low_watermark for f in deleted.values()] == [2]
    assert a.list_offsets({tp(0): OffsetSpec.earliest()})[tp(0)].result(30).offset == 2

    # Leader elections: the only replica leads already.
    r = a.elect_leaders(ElectionType.PREFERRED, [tp(0)]).result(30)
    assert [e.code() for e in r.values()] == [KafkaError.ELECTION_NOT_NEEDED]
    r = a.elect_leaders(ElectionType.UNCLEAN, [TopicPartition("sweep-none", 0)]).result(30)
    assert [e.code() for e in r.values()] == [KafkaError.UNKNOWN_TOPIC_OR_PART]
    assert a.elect_leaders(ElectionType.UNCLEAN, None).result(30) == {}

    # ACLs: no authorizer, as Kafka without authorizer.class.name.
    binding = AclBinding(ResourceType.TOPIC, "sweep", ResourcePatternType.LITERAL, "User:a", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    match_all = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                 AclOperation.ANY, AclPermissionType.ANY)
    for fs in (a.create_acls([binding]), a.delete_acls([match_all])):
        [f] = fs.values()
        with pytest.raises(KafkaException) as e:
            f.result(30)
        assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED
        assert e.value.args[0].str() == "No Authorizer is configured."
    assert wire.describe_acls_any(b.bootstrap) == (54, "No Authorizer is configured on the broker", 0)

    # Group offsets through the admin API.
    group = "sweep-admin"
    # Kafka answers COORDINATOR_NOT_AVAILABLE until __consumer_offsets exists; Strom has it from the start.
    altered = settle(lambda: a.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [TopicPartition("sweep", 1, 3), TopicPartition("sweep", 2, 1)])])[group].result(30).topic_partitions,
        lambda tps: all(t.error is None for t in tps), timeout=30)
    assert [t.error for t in altered] == [None, None], altered
    got = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    assert sorted((t.partition, t.offset) for t in got.topic_partitions) == [(1, 3), (2, 1)]
    listed = a.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result(30)
    assert group in [g.group_id for g in listed.valid]
    d = a.describe_consumer_groups([group])[group].result(30)
    assert (d.state, d.type, d.members, d.is_simple_consumer_group) == (
        ConsumerGroupState.EMPTY, ConsumerGroupType.CLASSIC, [], True)
    assert a.delete_consumer_groups([group])[group].result(30) is None
    with pytest.raises(KafkaException) as e:
        a.delete_consumer_groups([group])[group].result(30)
    assert e.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND
    a.delete_topics(["sweep"])["sweep"].result(30)


def test_confluent_consumer_offsets_and_assignment(make_broker):
    b = make_broker(FAST)
    create(b, {"cons": 2})
    produce(b, "cons", 5, 2, ts0=2000)  # partition p holds timestamps 2000+p, 2002+p, ...
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "cons-g", "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        md = c.list_topics("cons", timeout=10)
        assert sorted(md.topics["cons"].partitions) == [0, 1]
        assert c.get_watermark_offsets(TopicPartition("cons", 0), timeout=10) == (0, 5)
        times = c.offsets_for_times([TopicPartition("cons", 0, 2004), TopicPartition("cons", 1, 99999)], timeout=10)
        assert [(t.partition, t.offset) for t in times] == [(0, 2), (1, -1)]
        c.incremental_assign([TopicPartition("cons", 0, 1)])
        c.incremental_assign([TopicPartition("cons", 1, 3)])
        assert sorted(t.partition for t in c.assignment()) == [0, 1]
        got = {}
        deadline = time.time() + 30
        while len(got) < 6 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got[(m.partition(), m.offset())] = m.value()
        assert sorted(got) == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 3), (1, 4)]
        assert sorted((t.partition, t.offset) for t in c.position([TopicPartition("cons", 0), TopicPartition("cons", 1)])) == [
            (0, 5), (1, 5)]
        c.commit(offsets=[TopicPartition("cons", 0, 4), TopicPartition("cons", 1, 5)], asynchronous=False)
        committed = c.committed([TopicPartition("cons", 0), TopicPartition("cons", 1)], timeout=10)
        assert [(t.partition, t.offset) for t in committed] == [(0, 4), (1, 5)]
        # Pause partition 1, rewind both: only partition 0 delivers.
        c.pause([TopicPartition("cons", 1)])
        c.seek(TopicPartition("cons", 0, 3))
        c.seek(TopicPartition("cons", 1, 0))
        got = set()
        deadline = time.time() + 10
        while len(got) < 2 and time.time() < deadline:
            m = c.poll(0.3)
            if m is not None and not m.error():
                got.add((m.partition(), m.offset()))
        assert got == {(0, 3), (0, 4)}
        c.resume([TopicPartition("cons", 1)])
        deadline = time.time() + 10
        while (1, 4) not in got and time.time() < deadline:
            m = c.poll(0.3)
            if m is not None and not m.error():
                got.add((m.partition(), m.offset()))
        assert {(1, o) for o in range(5)} <= got
        c.incremental_unassign([TopicPartition("cons", 0)])
        assert [t.partition for t in c.assignment()] == [1]
    finally:
        c.close()


def kafka_python_admin(broker):
    from kafka import KafkaAdminClient
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)


def retry_coordinator(f, timeout=30):
    """kafka-python does not retry COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR (Kafka's
    answers until __consumer_offsets or __transaction_state exists); Strom has them from the start."""
    from kafka.errors import CoordinatorNotAvailableError, NotCoordinatorError
    deadline = time.time() + timeout
    while True:
        try:
            return f()
        except (CoordinatorNotAvailableError, NotCoordinatorError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_kafka_python_admin_sweep(make_broker):
    """The methods kafka-python 2.3.3 and 3.0.12 share."""
    import kafka
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ConfigResource, ConfigResourceType, ResourcePattern, ResourcePatternFilter)
    from kafka.admin import NewPartitions as KpNewPartitions, NewTopic as KpNewTopic
    from kafka.errors import SecurityDisabledError
    b = make_broker(FAST)
    a = kafka_python_admin(b)
    a.create_topics([KpNewTopic("kp-sweep", 2, 1)])
    settle(lambda: "kp-sweep" in a.list_topics(), bool)
    produce(b, "kp-sweep", 3, 2)
    [t] = a.describe_topics(["kp-sweep"])
    assert t.get("topic", t.get("name")) == "kp-sweep" and len(t["partitions"]) == 2
    a.create_partitions({"kp-sweep": KpNewPartitions(3)})
    settle(lambda: len(a.describe_topics(["kp-sweep"])[0]["partitions"]), lambda n: n == 3)
    cluster = a.describe_cluster()
    assert cluster["controller_id"] == cluster["brokers"][0]["node_id" if "node_id" in cluster["brokers"][0] else "broker_id"]
    cfg = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-sweep")])
    assert cfg
    a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp-sweep", configs={"retention.ms": "3600000"})])
    if kafka.__version__.startswith("2."):
        from kafka.structs import TopicPartition as KpTp
        low = a.delete_records({KpTp("kp-sweep", 0): 1})
        assert low[KpTp("kp-sweep", 0)]["low_watermark"] == 1
    acl_filter = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(kafka.admin.ResourceType.ANY, None,
                                                                  ACLResourcePatternType.ANY))
    with pytest.raises(SecurityDisabledError):
        a.describe_acls(acl_filter)
    created = a.create_acls([ACL("User:a", "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                                 ResourcePattern(kafka.admin.ResourceType.TOPIC, "kp-sweep"))])
    assert created["succeeded"] == [] and [e for e in created["failed"]] and all(
        "SecurityDisabled" in str(e) for e in created["failed"])
    [(_, matched, err)] = a.delete_acls([acl_filter])
    assert matched == [] and err is SecurityDisabledError
    # Groups: one stable classic group.
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "kp-g", "auto.offset.reset": "earliest"})
    c.subscribe(["kp-sweep"])
    try:
        assigned(c, 3)
        c.commit(offsets=[TopicPartition("kp-sweep", 0, 2)], asynchronous=False)
        if kafka.__version__.startswith("2."):
            listed = retry_coordinator(a.list_consumer_groups)
            assert ("kp-g", "consumer") in listed
            [d] = retry_coordinator(lambda: a.describe_consumer_groups(["kp-g"]))
            assert (d.group, d.state, d.protocol_type, d.protocol) == ("kp-g", "Stable", "consumer", "range")
            offs = retry_coordinator(lambda: a.list_consumer_group_offsets("kp-g"))
            assert [(tp.partition, o.offset) for tp, o in offs.items()] == [(0, 2)]
        else:
            listed = retry_coordinator(a.list_groups)
            assert [g["group_id"] for g in listed] == ["kp-g"]
            d = retry_coordinator(lambda: a.describe_groups(["kp-g"], include_authorized_operations=True))["kp-g"]
            assert (d["group_state"], d["protocol_type"], d["protocol_data"], d["error"]) == (
                "Stable", "consumer", "range", None)
            assert set(d["authorized_operations"]) == {"READ", "DELETE", "DESCRIBE", "DESCRIBE_CONFIGS",
                                                      "ALTER_CONFIGS"}
    finally:
        c.close()
    if kafka.__version__.startswith("2."):
        assert sorted(retry_coordinator(lambda: a.delete_consumer_groups(["kp-g", "kp-none"]))) == [
            ("kp-g", kafka.errors.NoError), ("kp-none", kafka.errors.GroupIdNotFoundError)]
    else:
        assert a.delete_groups(["kp-g", "kp-none"]) == {"kp-g": "OK", "kp-none": "GroupIdNotFoundError"}
    a.delete_topics(["kp-sweep"])
    a.close()


@kafka_differs("Kafka 4.x dropped DescribeLogDirs v0 (KIP-896), the only version kafka-python 2.3.3 sends; "
               "Strom serves v0 as the byte-identical v1")
def test_kafka_python_describe_log_dirs(make_broker):
    from kafka.admin import NewTopic as KpNewTopic
    b = make_broker()
    a = kafka_python_admin(b)
    a.create_topics([KpNewTopic("kp-dirs", 2, 1)])
    produce(b, "kp-dirs", 2, 2)
    dirs = settle(a.describe_log_dirs, lambda d: "kp-dirs" in str(d))
    text = str(dirs)
    assert "kp-dirs" in text and b.data_dir.rstrip("/").split("/")[-1] in text
    a.close()


def test_kafka_python3_admin_sweep(make_broker):
    """The methods only kafka-python 3.x has."""
    import kafka
    if kafka.__version__.startswith("2."):
        pytest.skip("kafka-python 3.x methods (run by scripts/test in .tools/venv-kafka-python3)")
    from kafka.errors import (GroupIdNotFoundError, InvalidReplicationAssignmentError,
                              NoReassignmentInProgressError, TransactionalIdNotFoundError)
    from kafka.admin import NewTopic as KpNewTopic
    from kafka.structs import OffsetAndMetadata, TopicPartition as KpTp
    b = make_broker(FAST)
    a = kafka_python_admin(b)
    a.create_topics([KpNewTopic("kp3", 3, 1)])
    settle(lambda: "kp3" in a.list_topics(), bool)
    produce(b, "kp3", 4, 3)
    # DescribeTopicPartitions with its cursor.
    page = a.describe_topic_partitions(["kp3"], response_partition_limit=2)
    assert [p["partition_index"] for p in page["topics"][0]["partitions"]] == [0, 1]
    assert page["next_cursor"] == {"topic_name": "kp3", "partition_index": 2}
    assert a.describe_topic_partitions(["kp3"])["next_cursor"] is None
    # Elections and reassignments on one node.
    r = a.elect_leaders(0, {"kp3": [0]}, raise_errors=False)
    [res] = r.replica_election_results
    assert [(p.partition_id, p.error_code, p.error_message) for p in res.partition_result] == [
        (0, 84, "Leader election not needed for topic partition.")]
    assert a.list_partition_reassignments() == {}
    tp0 = KpTp("kp3", 0)
    node = a.describe_cluster()["controller_id"]
    assert a.alter_partition_reassignments({tp0: [node]}) == {tp0: None}
    assert a.alter_partition_reassignments({tp0: [node + 6]}) == {tp0: InvalidReplicationAssignmentError}
    assert a.alter_partition_reassignments({tp0: None}) == {tp0: NoReassignmentInProgressError}
    assert a.list_partition_reassignments() == {}
    # One log dir: a replica is in it already; other paths do not exist.
    from kafka.structs import TopicPartitionReplica
    [log_dir] = a.describe_log_dirs()[0]["log_dirs"]
    here, missing = TopicPartitionReplica("kp3", 0, node), TopicPartitionReplica("kp3-none", 0, node)
    assert a.alter_replica_log_dirs({here: log_dir["log_dir"]}) == {here: kafka.errors.NoError}
    assert a.alter_replica_log_dirs({missing: log_dir["log_dir"]}) == {missing: kafka.errors.UnknownTopicOrPartitionError}
    assert a.alter_replica_log_dirs({here: "/kp3-no-such-dir"}) == {here: kafka.errors.LogDirNotFoundError}
    # Offsets and records.
    assert a.list_partition_offsets({tp0: -1})[tp0].offset == 4
    assert a.delete_records({tp0: 1})[tp0]["low_watermark"] == 1
    producers = a.describe_producers([tp0])[tp0]
    assert len(producers.active_producers) == 1 and producers.active_producers[0].last_sequence == 3
    assert a.list_transactions() == {node: []}
    with pytest.raises(TransactionalIdNotFoundError):
        retry_coordinator(lambda: a.describe_transactions(["kp3-none"]))
    assert a.find_hanging_transactions() == []
    # Group offsets without members.
    # Kafka answers NOT_COORDINATOR per partition while __consumer_offsets loads.
    altered = settle(lambda: retry_coordinator(lambda: a.alter_group_offsets(
        "kp3-g", {tp0: OffsetAndMetadata(2, "m", -1)})), lambda r: r == {tp0: kafka.errors.NoError}, timeout=30)
    assert altered == {tp0: kafka.errors.NoError}
    assert a.list_group_offsets({"kp3-g": None}) == {"kp3-g": {tp0: OffsetAndMetadata(2, "m", -1)}}
    d = a.describe_groups(["kp3-g", "kp3-none"])
    assert (d["kp3-g"]["group_state"], d["kp3-g"]["error"]) == ("Empty", None)
    assert d["kp3-none"]["group_state"] == "Dead" and "GroupIdNotFound" in d["kp3-none"]["error"]
    from kafka.admin import MemberToRemove
    gone = a.remove_group_members("kp3-g", [MemberToRemove(group_instance_id="kp3-nobody")])
    assert list(gone.values()) == [kafka.errors.UnknownMemberIdError]
    assert a.delete_group_offsets("kp3-g", [tp0]) == {tp0: kafka.errors.NoError}
    assert a.list_group_offsets({"kp3-g": None}) == {"kp3-g": {}}
    assert a.delete_groups(["kp3-g", "kp3-none"]) == {"kp3-g": "OK", "kp3-none": GroupIdNotFoundError.__name__}
    a.close()
