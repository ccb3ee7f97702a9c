package io.strom.interop;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * One JVM that runs many scenarios, so a test file pays the JVM's start-up once.
 *
 * <p>Reads one request per line on stdin: tab-separated words, the scenario's
 * name, the bootstrap servers, then the scenario's own arguments. Each scenario
 * writes its findings as lines to stdout, then the launcher writes
 * {@code __END__ OK} or {@code __END__ FAIL <message>} (stack trace on stderr).
 * Scenarios check Kafka's behaviour themselves ({@link Check}) and print what
 * the Python side checks across clients.
 */
public final class Launcher {
    /** A scenario: bootstrap servers, its arguments, where to print findings. */
    @FunctionalInterface
    interface Scenario {
        void run(String bootstrap, List<String> args, Out out) throws Exception;
    }

    /** The protocol's stdout; scenarios print through it only. */
    static final class Out {
        private final PrintStream stream;

        Out(PrintStream stream) {
            this.stream = stream;
        }

        /** Prints one finding line (no tabs or newlines inside values expected). */
        synchronized void line(Object... words) {
            StringBuilder sb = new StringBuilder();
            for (Object w : words) {
                if (sb.length() > 0) {
                    sb.append('\t');
                }
                sb.append(w);
            }
            stream.println(sb);
            stream.flush();
        }
    }

    private static Map<String, Scenario> scenarios() {
        Map<String, Scenario> m = new TreeMap<>();
        m.put("produce", ProduceScenarios::produce);
        m.put("consume", ProduceScenarios::consume);
        m.put("idempotent", ProduceScenarios::idempotent);
        m.put("transactions", TxnScenarios::transactions);
        m.put("fencing", TxnScenarios::fencing);
        m.put("ctp", TxnScenarios::consumeTransformProduce);
        m.put("group", GroupScenarios::group);
        m.put("static-member", GroupScenarios::staticMember);
        m.put("admin-topics", AdminScenarios::topics);
        m.put("admin-configs", AdminScenarios::configs);
        m.put("admin-offsets", AdminScenarios::offsets);
        m.put("admin-groups", AdminScenarios::groups);
        m.put("admin-cluster", AdminScenarios::cluster);
        return m;
    }

    public static void main(String[] argv) throws Exception {
        PrintStream protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
        System.setOut(System.err); // nothing but the protocol on stdout
        Out out = new Out(protocol);
        Map<String, Scenario> scenarios = scenarios();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            List<String> words = Arrays.asList(line.split("\t", -1));
            Scenario s = scenarios.get(words.get(0));
            try {
                if (s == null) {
                    throw new IllegalArgumentException("unknown scenario " + words.get(0) + "; known: " + scenarios.keySet());
                }
                if (words.size() < 2) {
                    throw new IllegalArgumentException("no bootstrap given");
                }
                System.err.println("=== scenario " + line.replace('\t', ' '));
                s.run(words.get(1), words.subList(2, words.size()), out);
                out.line("__END__", "OK");
            } catch (Throwable t) {
                StringWriter sw = new StringWriter();
                t.printStackTrace(new PrintWriter(sw));
                System.err.println(sw);
                String msg = String.valueOf(t).replace('\n', ' ');
                out.line("__END__", "FAIL", msg);
            }
        }
    }

    private Launcher() {}
}
