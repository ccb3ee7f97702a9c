//! The `--bootstrap` option every client command takes.

use clap::Args;

/// Where the brokers are.
#[derive(Debug, Args)]
pub struct Bootstrap {
    /// Broker(s) to connect to, HOST:PORT[,HOST:PORT...] (also --bootstrap-server, Kafka's name).
    #[arg(
        long = "bootstrap",
        alias = "bootstrap-server",
        value_name = "HOST:PORT",
        global = true,
        default_value = "127.0.0.1:9092",
        env = "STROM_BOOTSTRAP"
    )]
    pub servers: String,
}
