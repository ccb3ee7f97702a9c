//! Alerts a home owner within seconds when a meter's load goes above 2 kW:
//! reads `meter-readings` in the consumer group `load-alerts` (run several
//! copies to share the meters) and prints an alert on the first reading
//! above the limit, and again when the load drops back.
//!
//! ```sh
//! cargo run --release -p strom-client --example load_alerts -- 127.0.0.1:9092
//! ```

use std::collections::HashMap;
use std::time::Duration;

use strom_client::consumer::{Consumer, ConsumerConfig};

const LIMIT_WATTS: f64 = 2000.0;

/// The `watts` field of a reading like `{"meter":"meter-3","minute":7,"watts":2710}`.
fn watts(reading: &str) -> Option<f64> {
    let rest = reading.split("\"watts\":").nth(1)?;
    rest.trim_end_matches('}').trim().parse().ok()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let mut config = ConsumerConfig::new(&bootstrap);
    config
        .set("group.id", "load-alerts")?
        .set("auto.offset.reset", "latest")?
        .set("fetch.max.wait.ms", "100")?;
    let mut consumer = Consumer::new(config)?;
    consumer.subscribe(&["meter-readings"]).await?;
    let mut over: HashMap<String, bool> = HashMap::new();
    loop {
        for r in consumer.poll(Duration::from_millis(500)).await? {
            let meter = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let reading =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            let Some(w) = watts(&reading) else { continue };
            let was_over = over.get(&meter).copied().unwrap_or(false);
            if w > LIMIT_WATTS && !was_over {
                println!("ALERT {meter}: load {w:.0} W is above {LIMIT_WATTS:.0} W");
            } else if w <= LIMIT_WATTS && was_over {
                println!("ok    {meter}: load back to {w:.0} W");
            }
            over.insert(meter, w > LIMIT_WATTS);
        }
    }
}
