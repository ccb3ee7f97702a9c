package org.apache.kafka.common.utils;

/**
 * The one class connect-file 4.3.1 needs that kafka-clients 4.4.0 moved:
 * the FileStream connectors' version() calls AppInfoParser.getVersion(), which
 * 4.4 keeps as org.apache.kafka.common.utils.internals.AppInfoParser. connect-file
 * 4.4.0 is not on Maven Central, so scripts/kafka install compiles this bridge
 * into .tools/kafka/connect-compat, which only Connect workers have on their
 * classpath. Remove it (and pin connect-file to 4.4.0) once that is published.
 */
public final class AppInfoParser {
    private AppInfoParser() {
    }

    /** Kafka's version, as kafka-clients reports it. */
    public static String getVersion() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getVersion();
    }

    /** The commit Kafka was built from, as kafka-clients reports it. */
    public static String getCommitId() {
        return org.apache.kafka.common.utils.internals.AppInfoParser.getCommitId();
    }
}
