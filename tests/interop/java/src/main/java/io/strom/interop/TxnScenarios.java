package io.strom.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Transactions: commit and abort, fencing, consume-transform-produce. */
final class TxnScenarios {
    static KafkaProducer<String, String> txnProducer(String bootstrap, String txnId) {
        return new KafkaProducer<>(Check.props(bootstrap, "transactional.id", txnId, "acks", "all",
                "transaction.timeout.ms", 60000, "linger.ms", 5),
                new StringSerializer(), new StringSerializer());
    }

    static List<String> readValues(String bootstrap, String topic, String isolation, int expected) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Check.props(bootstrap,
                "isolation.level", isolation, "enable.auto.commit", false),
                new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(topic, Duration.ofSeconds(30)).forEach(pi -> tps.add(new TopicPartition(topic, pi.partition())));
            c.assign(tps);
            c.seekToBeginning(tps);
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (values.size() < expected && System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(200)).forEach(r -> values.add(r.value()));
            }
            long quiet = System.nanoTime() + Duration.ofSeconds(1).toNanos();
            while (System.nanoTime() < quiet) {
                c.poll(Duration.ofMillis(200)).forEach(r -> values.add(r.value()));
            }
        }
        return values;
    }

    /**
     * transactions TOPIC: commits c1-0..4, aborts a-0..4, commits c2-0..4 on
     * partition 0. read_committed sees the ten committed values in order;
     * read_uncommitted all fifteen. Prints "committed v..." for the Python side.
     */
    static void transactions(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        try (KafkaProducer<String, String> p = txnProducer(bootstrap, "java-txn-" + topic)) {
            p.initTransactions();
            String[][] rounds = {{"c1", "commit"}, {"a", "abort"}, {"c2", "commit"}};
            for (String[] round : rounds) {
                p.beginTransaction();
                for (int i = 0; i < 5; i++) {
                    p.send(new ProducerRecord<>(topic, 0, null, round[0] + "-" + i));
                }
                if (round[1].equals("commit")) {
                    p.commitTransaction();
                } else {
                    p.flush();
                    p.abortTransaction();
                }
            }
        }
        List<String> committed = new ArrayList<>();
        for (String prefix : new String[] {"c1", "c2"}) {
            for (int i = 0; i < 5; i++) {
                committed.add(prefix + "-" + i);
            }
        }
        Check.equal(committed, readValues(bootstrap, topic, "read_committed", 10), "read_committed values");
        List<String> all = readValues(bootstrap, topic, "read_uncommitted", 15);
        Check.equal(15, all.size(), "read_uncommitted count (aborted records stay in the log)");
        Check.that(all.contains("a-0") && all.contains("a-4"), "read_uncommitted sees the aborted records: " + all);
        out.line("committed", String.join(",", committed));
    }

    /**
     * fencing TOPIC: a second producer with the same transactional.id fences the
     * first; the first's commit fails with ProducerFencedException and its open
     * transaction is aborted.
     */
    static void fencing(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        String txnId = "java-fence-" + topic;
        KafkaProducer<String, String> first = txnProducer(bootstrap, txnId);
        try {
            first.initTransactions();
            first.beginTransaction();
            first.send(new ProducerRecord<>(topic, 0, null, "zombie")).get();
            try (KafkaProducer<String, String> second = txnProducer(bootstrap, txnId)) {
                second.initTransactions(); // bumps the epoch, aborting the first's transaction
                try {
                    first.commitTransaction();
                    throw new Check.Failed("the fenced producer's commit succeeded");
                } catch (ProducerFencedException e) {
                    out.line("fenced", e.getClass().getSimpleName());
                } catch (KafkaException e) {
                    Check.that(e.getCause() instanceof ProducerFencedException
                            || e instanceof org.apache.kafka.common.errors.InvalidProducerEpochException,
                            "commit of the fenced producer failed with " + e);
                    out.line("fenced", e.getClass().getSimpleName());
                }
                second.beginTransaction();
                second.send(new ProducerRecord<>(topic, 0, null, "survivor"));
                second.commitTransaction();
            }
        } finally {
            first.close(Duration.ZERO);
        }
        Check.equal(List.of("survivor"), readValues(bootstrap, topic, "read_committed", 1), "read_committed after fencing");
    }

    /**
     * ctp IN OUT GROUP COUNT: produces COUNT records to IN, then a
     * consume-transform-produce loop copies them upper-cased to OUT in
     * transactions with sendOffsetsToTransaction. Its second transaction is
     * aborted and the consumer rewound to the group's committed offsets, as an
     * application does after a failure. At the end OUT holds each value exactly
     * once (read_committed) and the group's committed offset is COUNT.
     */
    static void consumeTransformProduce(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String in = args.get(0);
        String outTopic = args.get(1);
        String group = args.get(2);
        int count = Integer.parseInt(args.get(3));
        try (KafkaProducer<String, String> p = new KafkaProducer<>(Check.props(bootstrap, "acks", "all"),
                new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < count; i++) {
                p.send(new ProducerRecord<>(in, 0, null, "v" + i));
            }
        }
        TopicPartition tp = new TopicPartition(in, 0);
        int aborted = 0;
        int processed = 0;
        int txns = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Check.props(bootstrap, "group.id", group,
                "enable.auto.commit", false, "auto.offset.reset", "earliest", "isolation.level", "read_committed",
                "max.poll.records", Math.max(1, count / 5)), new StringDeserializer(), new StringDeserializer());
             KafkaProducer<String, String> p = txnProducer(bootstrap, "java-ctp-" + group)) {
            p.initTransactions();
            c.subscribe(List.of(in));
            long deadline = System.nanoTime() + Duration.ofSeconds(90).toNanos();
            while (processed < count) {
                Check.that(System.nanoTime() < deadline, "ctp processed only " + processed + " of " + count);
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
                if (recs.isEmpty()) {
                    continue;
                }
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                int n = 0;
                for (ConsumerRecord<String, String> r : recs) {
                    p.send(new ProducerRecord<>(outTopic, 0, null, r.value().toUpperCase()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    n++;
                }
                p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                txns++;
                if (txns == 2) {
                    p.abortTransaction();
                    aborted += n;
                    OffsetAndMetadata committed = c.committed(java.util.Set.of(tp)).get(tp);
                    Check.that(committed != null, "the first transaction committed the group's offset");
                    c.seek(tp, committed.offset());
                } else {
                    p.commitTransaction();
                    processed += n;
                }
            }
        }
        Check.that(aborted > 0, "one transaction was aborted");
        try (Admin admin = Check.admin(bootstrap)) {
            OffsetAndMetadata o = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().get(tp);
            Check.equal((long) count, o == null ? null : o.offset(), "group's committed offset");
        }
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            expected.add("V" + i);
        }
        Check.equal(expected, readValues(bootstrap, outTopic, "read_committed", count), "OUT read_committed");
        out.line("ctp", count, "aborted", aborted);
    }

    private TxnScenarios() {}
}
