package io.strom.kstreams;

import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.state.WindowStore;

/**
 * One Kafka Streams application instance, as an application would write it:
 * `App TOPOLOGY BOOTSTRAP APPLICATION_ID STATE_DIR [key=value...]`, where the
 * key=value pairs override Streams configs. Runs until its stdin closes, then
 * closes the KafkaStreams instance (committing what it processed). Reports on
 * stdout: `STATE <new state>` on every state change, `ERROR <exception>` when a
 * stream thread dies, `CLOSED` after a clean close. The test may SIGKILL it at
 * any time instead.
 *
 * Topologies (all topics named after the application id):
 *   wordcount  ID-text (lines) -> words -> groupBy(word) -> count -> ID-counts (word, count)
 *   windowed   ID-readings (zone, device) -> groupByKey -> 10 s tumbling windows,
 *              no grace -> count -> suppress(untilWindowCloses) -> ID-windows ("zone@start", count)
 *   join       ID-orders (order, "order:user") -> selectKey(user) -> join(table ID-users
 *              (user, region)) -> ID-enriched (user, "order@region")
 */
public final class App {
    private App() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: App wordcount|windowed|join BOOTSTRAP APPLICATION_ID STATE_DIR [key=value...]");
            System.exit(2);
        }
        String id = args[2];
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, id);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[3]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        // Small, quick transactions; every state update forwarded (no record cache).
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.REPARTITION_PURGE_INTERVAL_MS_CONFIG, 500);
        // Records reach the broker as they are processed, inside the open transaction.
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 0);
        // A killed instance leaves the group after 6 s (the broker's minimum), not 45 s.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 500);
        for (String kv : Arrays.copyOfRange(args, 4, args.length)) {
            int eq = kv.indexOf('=');
            props.put(kv.substring(0, eq), kv.substring(eq + 1));
        }

        Topology topology = switch (args[0]) {
            case "wordcount" -> wordCount(id);
            case "windowed" -> windowed(id);
            case "join" -> join(id);
            default -> throw new IllegalArgumentException("unknown topology " + args[0]);
        };
        KafkaStreams streams = new KafkaStreams(topology, props);
        streams.setStateListener((now, before) -> say("STATE " + now));
        streams.setUncaughtExceptionHandler(e -> {
            say("ERROR " + e.toString().replace('\n', ' '));
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        while (System.in.read() != -1) {
            // runs until the test closes stdin
        }
        streams.close(Duration.ofSeconds(60));
        say("CLOSED");
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    static Topology wordCount(String id) {
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream(id + "-text")
            .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
            .filter((k, word) -> !word.isEmpty())
            .groupBy((k, word) -> word)
            .count(Materialized.as("counts"))
            .toStream()
            .mapValues(count -> Long.toString(count))
            .to(id + "-counts");
        return b.build();
    }

    static Topology windowed(String id) {
        StreamsBuilder b = new StreamsBuilder();
        b.<String, String>stream(id + "-readings")
            .groupByKey()
            .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), Duration.ZERO))
            // Serdes named, so that suppress() knows how to buffer windowed keys.
            .count(Materialized.<String, Long, WindowStore<Bytes, byte[]>>as("zone-counts")
                .withKeySerde(Serdes.String())
                .withValueSerde(Serdes.Long()))
            .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
            .toStream()
            .map((w, count) -> KeyValue.pair(w.key() + "@" + w.window().start(), Long.toString(count)))
            .to(id + "-windows");
        return b.build();
    }

    static Topology join(String id) {
        StreamsBuilder b = new StreamsBuilder();
        KTable<String, String> users = b.table(id + "-users", Materialized.as("users"));
        KStream<String, String> orders = b.stream(id + "-orders");
        orders
            .selectKey((order, value) -> value.substring(value.indexOf(':') + 1))
            .join(users, (value, region) -> value.substring(0, value.indexOf(':')) + "@" + region)
            .to(id + "-enriched");
        return b.build();
    }
}
