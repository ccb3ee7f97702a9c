package io.strom.interop;

import java.time.Duration;
import java.util.Objects;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.KafkaFuture;

/** Assertions and small helpers shared by the scenarios. */
final class Check {
    /** A scenario's expectation about Kafka's behaviour did not hold. */
    static final class Failed extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Failed(String message) {
            super(message);
        }
    }

    static void that(boolean cond, String what) {
        if (!cond) {
            throw new Failed(what);
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) {
            throw new Failed(what + ": expected " + expected + ", got " + actual);
        }
    }

    /** Waits for the future and expects it to fail with the given exception type (as the cause). */
    static Throwable fails(KafkaFuture<?> f, Class<? extends Throwable> type, String what) throws InterruptedException {
        try {
            f.get();
        } catch (ExecutionException e) {
            if (type.isInstance(e.getCause())) {
                return e.getCause();
            }
            throw new Failed(what + ": expected " + type.getSimpleName() + ", got " + e.getCause());
        }
        throw new Failed(what + ": expected " + type.getSimpleName() + ", but it succeeded");
    }

    /** Polls cond until it holds, failing after the timeout. */
    static void eventually(Duration timeout, String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new Failed("timed out waiting: " + what);
            }
            Thread.sleep(100);
        }
    }

    static Properties props(String bootstrap, Object... kv) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        for (int i = 0; i + 1 < kv.length; i += 2) {
            p.put(String.valueOf(kv[i]), String.valueOf(kv[i + 1]));
        }
        return p;
    }

    static Admin admin(String bootstrap) {
        return Admin.create(props(bootstrap, "request.timeout.ms", 15000, "default.api.timeout.ms", 30000));
    }

    private Check() {}
}
