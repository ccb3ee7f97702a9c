package io.strom.interop;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** The Admin client: topics, partitions, configs, offsets, records, groups, cluster. */
final class AdminScenarios {
    static Set<String> names(Admin admin) throws Exception {
        return admin.listTopics().names().get();
    }

    /**
     * admin-topics PREFIX: create (and validate-only), the TopicExists error,
     * describe (partitions, leader, topic id), unknown topic, create partitions
     * (more, then fewer: InvalidPartitions), delete.
     */
    static void topics(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String a = args.get(0) + "-a";
        String b = args.get(0) + "-b";
        String v = args.get(0) + "-v";
        try (Admin admin = Check.admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(a, 3, (short) 1).configs(Map.of("retention.ms", "3600000")),
                    new NewTopic(b, 1, (short) 1))).all().get();
            Check.fails(admin.createTopics(List.of(new NewTopic(a, 3, (short) 1))).all(), TopicExistsException.class,
                    "creating an existing topic");
            admin.createTopics(List.of(new NewTopic(v, 2, (short) 1)), new CreateTopicsOptions().validateOnly(true))
                    .all().get();
            Set<String> listed = names(admin);
            Check.that(listed.contains(a) && listed.contains(b), "listTopics has the new topics: " + listed);
            Check.that(!listed.contains(v), "a validate-only create makes no topic: " + listed);
            int node = admin.describeCluster().nodes().get().iterator().next().id();
            TopicDescription d = admin.describeTopics(List.of(a)).allTopicNames().get().get(a);
            Check.equal(3, d.partitions().size(), "partitions of " + a);
            Check.that(!d.topicId().equals(Uuid.ZERO_UUID), "topic id is set");
            d.partitions().forEach(p -> {
                Check.equal(node, p.leader() == null ? null : p.leader().id(), "leader of partition " + p.partition());
                Check.equal(1, p.replicas().size(), "replicas of partition " + p.partition());
                Check.equal(1, p.isr().size(), "isr of partition " + p.partition());
            });
            Check.fails(admin.describeTopics(List.of(args.get(0) + "-missing")).allTopicNames(),
                    UnknownTopicOrPartitionException.class, "describing an unknown topic");
            admin.createPartitions(Map.of(a, NewPartitions.increaseTo(5))).all().get();
            Check.eventually(Duration.ofSeconds(10), "5 partitions described", () -> {
                try {
                    return admin.describeTopics(List.of(a)).allTopicNames().get().get(a).partitions().size() == 5;
                } catch (Exception e) {
                    return false;
                }
            });
            Check.fails(admin.createPartitions(Map.of(a, NewPartitions.increaseTo(2))).all(),
                    InvalidPartitionsException.class, "decreasing the partition count");
            admin.deleteTopics(List.of(a, b)).all().get();
            Check.eventually(Duration.ofSeconds(20), "deleted topics gone from listTopics", () -> {
                try {
                    Set<String> now = names(admin);
                    return !now.contains(a) && !now.contains(b);
                } catch (Exception e) {
                    return false;
                }
            });
            out.line("topics", "ok", d.topicId());
        }
    }

    /** A read that may throw, for {@link #settle}. */
    @FunctionalInterface
    interface Probe {
        boolean holds() throws Exception;
    }

    /** Waits up to ten seconds for probe to hold; the checks after it say what was wrong if it never does. */
    static void settle(Probe probe) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (System.nanoTime() < deadline) {
            try {
                if (probe.holds()) {
                    return;
                }
            } catch (Exception e) {
                // not yet
            }
            Thread.sleep(100);
        }
    }

    static Config topicConfig(Admin admin, String topic) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        return admin.describeConfigs(List.of(r)).all().get().get(r);
    }

    /**
     * admin-configs TOPIC: a topic created with retention.ms shows it as a
     * dynamic topic config; incremental SET, DELETE (back to the default) and an
     * invalid value (InvalidConfiguration); the broker's configs are described.
     */
    static void configs(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = Check.admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1).configs(Map.of("retention.ms", "3600000"))))
                    .all().get();
            ConfigEntry e = topicConfig(admin, topic).get("retention.ms");
            Check.equal("3600000", e.value(), "retention.ms as created");
            Check.equal(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, e.source(), "retention.ms source");
            Check.equal("delete", topicConfig(admin, topic).get("cleanup.policy").value(), "cleanup.policy default");
            Map<ConfigResource, Collection<AlterConfigOp>> set = Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                    new AlterConfigOp(new ConfigEntry("cleanup.policy", "compact"), AlterConfigOp.OpType.SET)));
            admin.incrementalAlterConfigs(set).all().get();
            // Kafka's brokers apply a config change from the metadata log a moment after
            // the controller answers: read-after-alter is eventually consistent there.
            settle(() -> topicConfig(admin, topic).get("retention.ms").value().equals("7200000"));
            Config c = topicConfig(admin, topic);
            Check.equal("7200000", c.get("retention.ms").value(), "retention.ms after SET");
            Check.equal("compact", c.get("cleanup.policy").value(), "cleanup.policy after SET");
            admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)))).all().get();
            settle(() -> topicConfig(admin, topic).get("retention.ms").value().equals("604800000"));
            e = topicConfig(admin, topic).get("retention.ms");
            Check.equal("604800000", e.value(), "retention.ms after DELETE (log.retention.hours=168)");
            Check.that(e.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "retention.ms source after DELETE: "
                    + e.source());
            Check.fails(admin.incrementalAlterConfigs(Map.of(res, List.of(
                    new AlterConfigOp(new ConfigEntry("retention.ms", "soon"), AlterConfigOp.OpType.SET)))).all(),
                    InvalidConfigurationException.class, "setting retention.ms=soon");
            String node = String.valueOf(admin.describeCluster().nodes().get().iterator().next().id());
            ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, node);
            Config bc = admin.describeConfigs(List.of(broker)).all().get().get(broker);
            Check.that(bc.get("num.partitions") != null, "broker config num.partitions described");
            out.line("configs", "ok", bc.entries().size());
        }
    }

    /**
     * admin-offsets TOPIC: ten records with increasing timestamps; list offsets
     * earliest, latest, by timestamp and max timestamp; delete records before 4
     * (low watermark 4, earliest then 4); deleting past the high watermark fails
     * with OffsetOutOfRange.
     */
    static void offsets(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        TopicPartition tp = new TopicPartition(topic, 0);
        long base = System.currentTimeMillis() - 60_000;
        try (Admin admin = Check.admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            try (KafkaProducer<String, String> p = new KafkaProducer<>(Check.props(bootstrap, "acks", "all"),
                    new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < 10; i++) {
                    p.send(new ProducerRecord<>(topic, 0, base + i * 1000L, "k" + i, "v" + i)).get();
                }
            }
            Check.equal(0L, offset(admin, tp, OffsetSpec.earliest()), "earliest");
            Check.equal(10L, offset(admin, tp, OffsetSpec.latest()), "latest");
            Check.equal(5L, offset(admin, tp, OffsetSpec.forTimestamp(base + 4500)), "first offset at or after a timestamp");
            Check.equal(9L, offset(admin, tp, OffsetSpec.maxTimestamp()), "offset of the max timestamp");
            Check.equal(-1L, offset(admin, tp, OffsetSpec.forTimestamp(base + 60_000)), "a timestamp past every record");
            long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(4))).lowWatermarks().get(tp).get()
                    .lowWatermark();
            Check.equal(4L, low, "low watermark after deleteRecords");
            Check.equal(4L, offset(admin, tp, OffsetSpec.earliest()), "earliest after deleteRecords");
            Check.fails(admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(100))).lowWatermarks().get(tp),
                    OffsetOutOfRangeException.class, "deleting records past the high watermark");
            out.line("offsets", "ok");
        }
    }

    static long offset(Admin admin, TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get().offset();
    }

    static Set<String> groupIds(Admin admin) throws Exception {
        return admin.listGroups().all().get().stream().map(GroupListing::groupId).collect(Collectors.toSet());
    }

    /**
     * admin-groups TOPIC GROUP: a subscribed member commits; the group is
     * listed and described; deleting it while a member is in it fails with
     * GroupNotEmpty; after the member leaves it is Empty with its offsets, its
     * offsets can be altered, and it can be deleted.
     */
    static void groups(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        String group = args.get(1);
        TopicPartition tp = new TopicPartition(topic, 0);
        try (Admin admin = Check.admin(bootstrap)) {
            admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
            try (KafkaProducer<String, String> p = new KafkaProducer<>(Check.props(bootstrap),
                    new StringSerializer(), new StringSerializer())) {
                for (int i = 0; i < 5; i++) {
                    p.send(new ProducerRecord<>(topic, 0, null, "v" + i));
                }
            }
            KafkaConsumer<String, String> c = new KafkaConsumer<>(Check.props(bootstrap, "group.id", group,
                    "auto.offset.reset", "earliest", "enable.auto.commit", false),
                    new StringDeserializer(), new StringDeserializer());
            try {
                c.subscribe(List.of(topic));
                int[] seen = {0};
                Check.eventually(Duration.ofSeconds(60), "member consumed the five records", () -> {
                    seen[0] += c.poll(Duration.ofMillis(100)).count();
                    return seen[0] >= 5;
                });
                c.commitSync();
                Check.that(groupIds(admin).contains(group), "listGroups has " + group);
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
                Check.equal(GroupState.STABLE, d.groupState(), "state with a member");
                Check.equal(1, d.members().size(), "members");
                Check.fails(admin.deleteConsumerGroups(List.of(group)).all(), GroupNotEmptyException.class,
                        "deleting a group that has a member");
            } finally {
                c.close();
            }
            Check.eventually(Duration.ofSeconds(20), "group Empty after its member left", () -> {
                try {
                    return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get()
                            .groupState() == GroupState.EMPTY;
                } catch (Exception e) {
                    return false;
                }
            });
            Map<TopicPartition, OffsetAndMetadata> offs =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Check.equal(5L, offs.get(tp) == null ? null : offs.get(tp).offset(), "committed offset");
            admin.alterConsumerGroupOffsets(group, Map.of(tp, new OffsetAndMetadata(2))).all().get();
            offs = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            Check.equal(2L, offs.get(tp) == null ? null : offs.get(tp).offset(), "offset after alterConsumerGroupOffsets");
            admin.deleteConsumerGroups(List.of(group)).all().get();
            Check.that(!groupIds(admin).contains(group), "deleted group still listed");
            out.line("groups", "ok");
        }
    }

    /** admin-cluster: describeCluster has a cluster id, one node that is its controller's peer. */
    static void cluster(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        try (Admin admin = Check.admin(bootstrap)) {
            DescribeClusterResult r = admin.describeCluster();
            String id = r.clusterId().get();
            Collection<Node> nodes = r.nodes().get();
            Node controller = r.controller().get();
            Check.that(id != null && !id.isEmpty(), "cluster id set");
            Check.equal(1, nodes.size(), "nodes");
            Node n = nodes.iterator().next();
            String[] hp = bootstrap.split(":");
            Check.equal(hp[0], n.host(), "node host (the advertised listener)");
            Check.equal(Integer.parseInt(hp[1]), n.port(), "node port");
            Check.that(controller != null && !controller.isEmpty(), "a controller is named");
            out.line("cluster", id, n.id(), controller.id());
        }
    }

    private AdminScenarios() {}
}
