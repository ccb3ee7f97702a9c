package io.strom.interop;

import java.time.Duration;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Consumer groups: classic (eager and cooperative), KIP-848 and static membership. */
final class GroupScenarios {
    /** A consumer with what its rebalance listener saw. */
    static final class Member implements ConsumerRebalanceListener {
        final String name;
        final KafkaConsumer<String, String> consumer;
        final Set<TopicPartition> revoked = new HashSet<>();
        int revocations;
        final Set<String> consumed;

        Member(String name, KafkaConsumer<String, String> consumer, Set<String> consumed) {
            this.name = name;
            this.consumer = consumer;
            this.consumed = consumed;
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            revoked.addAll(partitions);
            if (!partitions.isEmpty()) {
                revocations++;
            }
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}

        void poll() {
            consumer.poll(Duration.ofMillis(100)).forEach(r -> consumed.add(r.partition() + "/" + r.offset()));
        }
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String protocol, String assignor,
            String instanceId) {
        Object[] common = {"group.id", group, "auto.offset.reset", "earliest", "enable.auto.commit", false};
        java.util.Properties p = Check.props(bootstrap, common);
        if (protocol.equals("consumer")) {
            p.put("group.protocol", "consumer");
            p.put("group.remote.assignor", assignor);
        } else {
            p.put("group.protocol", "classic");
            p.put("partition.assignment.strategy", assignor.equals("range")
                    ? "org.apache.kafka.clients.consumer.RangeAssignor"
                    : "org.apache.kafka.clients.consumer.CooperativeStickyAssignor");
            p.put("session.timeout.ms", "10000");
            p.put("heartbeat.interval.ms", "1000");
        }
        if (instanceId != null) {
            p.put("group.instance.id", instanceId);
        }
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static void produceSpread(String bootstrap, String topic, int partitions, int records) throws Exception {
        try (KafkaProducer<String, String> p = new KafkaProducer<>(Check.props(bootstrap, "acks", "all"),
                new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < records; i++) {
                p.send(new ProducerRecord<>(topic, i % partitions, "k" + i, "g-" + i));
            }
        }
    }

    static boolean split(Member a, Member b, int partitions) {
        Set<TopicPartition> x = a.consumer.assignment();
        Set<TopicPartition> y = b.consumer.assignment();
        Set<TopicPartition> union = new HashSet<>(x);
        union.addAll(y);
        return !x.isEmpty() && !y.isEmpty() && union.size() == partitions && union.size() == x.size() + y.size();
    }

    /** Whether the member's position on each of its partitions is at that partition's end. */
    static boolean caughtUp(Member m, String topic, int partitions, int records) {
        for (TopicPartition tp : m.consumer.assignment()) {
            long end = records / partitions + (tp.partition() < records % partitions ? 1 : 0);
            try {
                if (m.consumer.position(tp, Duration.ofMillis(100)) != end) {
                    return false;
                }
            } catch (org.apache.kafka.common.errors.TimeoutException e) {
                return false;
            }
        }
        return true;
    }

    /**
     * group TOPIC GROUP PROTOCOL ASSIGNOR PARTITIONS RECORDS: member A joins and
     * gets every partition; B joins and the partitions split between them; all
     * records are consumed; offsets committed and seen by Admin; the group is
     * described (its type and assignor printed); when B leaves A gets everything back.
     * The eager range assignor revokes all of A's partitions at the rebalance;
     * cooperative-sticky and the consumer protocol revoke only those that move.
     */
    static void group(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        String group = args.get(1);
        String protocol = args.get(2);
        String assignor = args.get(3);
        int partitions = Integer.parseInt(args.get(4));
        int records = Integer.parseInt(args.get(5));
        produceSpread(bootstrap, topic, partitions, records);
        Set<String> consumed = new HashSet<>();
        Member a = new Member("a", consumer(bootstrap, group, protocol, assignor, null), consumed);
        Member b = new Member("b", consumer(bootstrap, group, protocol, assignor, null), consumed);
        try (Admin admin = Check.admin(bootstrap)) {
            a.consumer.subscribe(List.of(topic), a);
            Check.eventually(Duration.ofSeconds(60), "A assigned every partition", () -> {
                a.poll();
                return a.consumer.assignment().size() == partitions;
            });
            Set<TopicPartition> before = new HashSet<>(a.revoked);
            b.consumer.subscribe(List.of(topic), b);
            Check.eventually(Duration.ofSeconds(60), "partitions split between A and B and every record consumed", () -> {
                a.poll();
                b.poll();
                return split(a, b, partitions) && consumed.size() == records
                        && caughtUp(a, topic, partitions, records) && caughtUp(b, topic, partitions, records);
            });
            Set<TopicPartition> finalA = new HashSet<>(a.consumer.assignment());
            Set<TopicPartition> revokedAtJoin = new HashSet<>(a.revoked);
            revokedAtJoin.removeAll(before);
            Set<TopicPartition> kept = new HashSet<>(finalA);
            kept.retainAll(revokedAtJoin);
            if (protocol.equals("classic") && assignor.equals("range")) {
                Check.that(kept.equals(finalA), "eager rebalance revokes every partition A had, kept ones too: revoked "
                        + revokedAtJoin + ", A now " + finalA);
            } else {
                Check.that(kept.isEmpty(), "incremental rebalance revokes only the partitions that move: revoked "
                        + revokedAtJoin + ", A kept " + finalA);
            }
            a.consumer.commitSync();
            b.consumer.commitSync();
            Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            for (int p = 0; p < partitions; p++) {
                long want = records / partitions + (p < records % partitions ? 1 : 0);
                OffsetAndMetadata o = committed.get(new TopicPartition(topic, p));
                Check.equal(want, o == null ? null : o.offset(), "committed offset of partition " + p);
            }
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
            // The group's type and assignor are printed for the Python side to check.
            Check.equal(GroupState.STABLE, d.groupState(), "group state");
            Check.equal(2, d.members().size(), "members");
            Map<String, Integer> perMember = new TreeMap<>();
            d.members().forEach(m -> perMember.put(m.clientId(), m.assignment().topicPartitions().size()));
            Check.equal(partitions, perMember.values().stream().mapToInt(Integer::intValue).sum(),
                    "partitions assigned across described members");
            out.line("split", "a=" + finalA.size(), "b=" + b.consumer.assignment().size());
            out.line("described", d.type(), d.partitionAssignor());
            b.consumer.close();
            Check.eventually(Duration.ofSeconds(60), "A gets every partition back after B left", () -> {
                a.poll();
                return a.consumer.assignment().size() == partitions;
            });
        } finally {
            a.consumer.close();
            b.consumer.close();
        }
    }

    /**
     * static-member TOPIC GROUP PARTITIONS: two classic members with
     * group.instance.id; B closes (a static member sends no LeaveGroup) and a new
     * consumer with B's instance id comes back within session.timeout.ms: it gets
     * B's partitions again and A sees no rebalance (no revocation, same generation).
     */
    static void staticMember(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        String group = args.get(1);
        int partitions = Integer.parseInt(args.get(2));
        Set<String> consumed = new HashSet<>();
        Member a = new Member("a", consumer(bootstrap, group, "classic", "range", "inst-a"), consumed);
        Member b = new Member("b", consumer(bootstrap, group, "classic", "range", "inst-b"), consumed);
        Member b2 = null;
        try {
            a.consumer.subscribe(List.of(topic), a);
            b.consumer.subscribe(List.of(topic), b);
            Check.eventually(Duration.ofSeconds(60), "partitions split between A and B", () -> {
                a.poll();
                b.poll();
                return split(a, b, partitions);
            });
            int generation = a.consumer.groupMetadata().generationId();
            int revocations = a.revocations;
            Set<TopicPartition> bParts = new HashSet<>(b.consumer.assignment());
            b.consumer.close();
            Member nb = new Member("b2", consumer(bootstrap, group, "classic", "range", "inst-b"), consumed);
            b2 = nb;
            nb.consumer.subscribe(List.of(topic), nb);
            Check.eventually(Duration.ofSeconds(30), "the returning static member gets B's partitions", () -> {
                a.poll();
                nb.poll();
                return nb.consumer.assignment().equals(bParts);
            });
            for (int i = 0; i < 10; i++) {
                a.poll();
            }
            Check.equal(revocations, a.revocations, "A's revocations while B restarted");
            Check.equal(generation, a.consumer.groupMetadata().generationId(), "A's generation while B restarted");
            out.line("static", "generation=" + generation, "b=" + bParts.size());
        } finally {
            a.consumer.close();
            b.consumer.close();
            if (b2 != null) {
                b2.consumer.close();
            }
        }
    }

    private GroupScenarios() {}
}
