package io.strom.interop;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Plain producing and consuming, for records read across clients. */
final class ProduceScenarios {
    /**
     * produce TOPIC COUNT COMPRESSION PARTITIONS: record i has key k{i}, value
     * java-{i}, header src=java, goes to partition i % PARTITIONS; prints
     * "sent partition offset key" for each, in send order.
     */
    static void produce(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        int count = Integer.parseInt(args.get(1));
        int partitions = Integer.parseInt(args.get(3));
        try (KafkaProducer<String, String> p = new KafkaProducer<>(Check.props(bootstrap,
                "compression.type", args.get(2), "linger.ms", 5, "acks", "all"),
                new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, i % partitions, "k" + i, "java-" + i);
                r.headers().add("src", "java".getBytes(StandardCharsets.UTF_8));
                sent.add(p.send(r));
            }
            for (int i = 0; i < count; i++) {
                RecordMetadata md = sent.get(i).get();
                out.line("sent", md.partition(), md.offset(), "k" + i);
            }
        }
    }

    /**
     * consume TOPIC EXPECTED ISOLATION: reads every partition from the start
     * until EXPECTED records came (and a quiet second more, to catch extras);
     * prints "rec partition offset key value headers" for each.
     */
    static void consume(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        int expected = Integer.parseInt(args.get(1));
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(Check.props(bootstrap,
                "isolation.level", args.get(2), "enable.auto.commit", false),
                new StringDeserializer(), new StringDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            c.partitionsFor(topic, Duration.ofSeconds(30)).forEach(pi -> tps.add(new TopicPartition(topic, pi.partition())));
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (got.size() < expected && System.nanoTime() < deadline) {
                c.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            long quiet = System.nanoTime() + Duration.ofSeconds(1).toNanos();
            while (System.nanoTime() < quiet) {
                c.poll(Duration.ofMillis(200)).forEach(got::add);
            }
            for (ConsumerRecord<String, String> r : got) {
                StringBuilder h = new StringBuilder();
                for (Header hd : r.headers()) {
                    h.append(hd.key()).append('=').append(new String(hd.value(), StandardCharsets.UTF_8)).append(';');
                }
                out.line("rec", r.partition(), r.offset(), r.key(), r.value(), h);
            }
            out.line("count", got.size());
        }
    }

    /**
     * idempotent TOPIC COUNT: an idempotent producer (acks=all, five requests in
     * flight) sends COUNT records to partition 0; the broker must append them
     * exactly once and in send order, so record i lands at offset i.
     */
    static void idempotent(String bootstrap, List<String> args, Launcher.Out out) throws Exception {
        String topic = args.get(0);
        int count = Integer.parseInt(args.get(1));
        try (KafkaProducer<String, String> p = new KafkaProducer<>(Check.props(bootstrap,
                "enable.idempotence", true, "acks", "all", "max.in.flight.requests.per.connection", 5,
                "linger.ms", 0, "batch.size", 1024),
                new StringSerializer(), new StringSerializer())) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(p.send(new ProducerRecord<>(topic, 0, "k" + i, "idem-" + i)));
            }
            for (int i = 0; i < count; i++) {
                Check.equal((long) i, sent.get(i).get().offset(), "offset of record " + i);
            }
            out.line("acked", count);
        }
    }

    private ProduceScenarios() {}
}
