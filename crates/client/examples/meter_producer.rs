//! Smart electricity meters: each meter sends its load reading (watts)
//! every "minute" (sped up here: every 100 ms), keyed by meter id so one
//! meter's readings stay in order on one partition.
//!
//! ```sh
//! cargo run --release -- server &
//! cargo run --release -p strom-client --example meter_producer -- 127.0.0.1:9092 20
//! ```

use std::time::Duration;

use strom_client::producer::{Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let meters: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let producer = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for minute in 0u64.. {
        tick.tick().await;
        for meter in 0..meters {
            // A daily-looking curve, with a spike on one meter now and then.
            let base = 400.0 + 300.0 * ((minute as f64 / 30.0 + meter as f64).sin() + 1.0);
            let watts = if (minute + meter as u64).is_multiple_of(37) {
                base + 2500.0
            } else {
                base
            };
            let reading =
                format!("{{\"meter\":\"meter-{meter}\",\"minute\":{minute},\"watts\":{watts:.0}}}");
            producer
                .send(
                    ProducerRecord::new("meter-readings")
                        .key(format!("meter-{meter}"))
                        .value(reading),
                )
                .await?;
        }
        if minute % 50 == 0 {
            producer.flush().await?;
            println!("minute {minute}: {meters} readings sent");
        }
    }
    Ok(())
}
