//! The floor of a produce path on this machine: the least work any
//! Kafka-compatible producer and broker must do per byte, done by two
//! threads with nothing else in the way.
//!
//! Why: the bench compares Strom with the machine's limits (loopback TCP,
//! disk write). Those limits each measure one step alone, but producing
//! takes all the steps at once on the same two cores. This program does
//! only what the wire format and durability make unavoidable:
//!
//! - producer: copy each record's value into a batch buffer behind a small
//!   record header, compute the batch's CRC32C (the format requires it),
//!   write the batch to a loopback TCP socket, with up to 5 batches in
//!   flight (Kafka's `max.in.flight.requests.per.connection`);
//! - broker: read the batch into a reused buffer, check its CRC32C (as
//!   Kafka's broker does), append it to a file (into the page cache, as
//!   an acknowledgement under the default flush policy needs), acknowledge.
//!
//! No protocol framing beyond a length, no allocation per batch, no async
//! runtime, blocking system calls on large buffers. What it reaches is an
//! upper bound for a real implementation on this machine; `bench/run.py`
//! shows Strom's figure as a ratio of it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;

/// Produce-path floor: producer and broker threads doing only the
/// unavoidable work (record copy, CRC32C both sides, loopback TCP, append
/// into the page cache). Prints JSON with the record bytes per second.
#[derive(Parser, Debug)]
struct Args {
    /// Record bytes to move.
    #[arg(long, default_value_t = 300 << 20)]
    bytes: usize,
    /// Size of each record's value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Batch size in bytes (the bench's producers use 1 MiB).
    #[arg(long, default_value_t = 1 << 20)]
    batch_size: usize,
    /// Directory for the log file (removed afterwards).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

/// Bytes of the per-record header written before each value: about what
/// Kafka's v2 record takes (length, attributes, deltas, key and header counts).
const RECORD_HEADER: usize = 8;
/// Batches a producer may have unacknowledged.
const IN_FLIGHT: usize = 5;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.record_size == 0 || args.batch_size < args.record_size + RECORD_HEADER {
        bail!("--batch-size must hold at least one record");
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("listening on loopback")?;
    let addr = listener.local_addr()?;
    let path = args.dir.join(format!("floor-{}.log", std::process::id()));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let broker = std::thread::spawn(move || -> Result<u64> {
        let (socket, _) = listener.accept()?;
        serve(socket, file)
    });
    let started = Instant::now();
    let sent = produce(TcpStream::connect(addr)?, &args)?;
    let stored = broker
        .join()
        .map_err(|_| anyhow::anyhow!("broker thread panicked"))??;
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if stored != sent.batch_bytes {
        bail!("stored {stored} bytes of {}", sent.batch_bytes);
    }
    let mb_s = sent.record_bytes as f64 / secs / 1e6;
    println!(
        "{}",
        serde_json::json!({"record_bytes": sent.record_bytes, "seconds": secs, "mb_s": mb_s})
    );
    Ok(())
}

/// What the producer sent.
struct Sent {
    record_bytes: u64,
    batch_bytes: u64,
}

/// Builds batches of records and sends them, `IN_FLIGHT` at most unacknowledged.
fn produce(mut socket: TcpStream, args: &Args) -> Result<Sent> {
    socket.set_nodelay(true)?;
    let value = vec![b'x'; args.record_size];
    let per_batch = args.batch_size / (args.record_size + RECORD_HEADER);
    let mut batch = Vec::with_capacity(4 + args.batch_size);
    let mut ack = [0u8; 1];
    let (mut records, mut in_flight) = (args.bytes / args.record_size, 0usize);
    let mut sent = Sent {
        record_bytes: 0,
        batch_bytes: 0,
    };
    while records > 0 {
        let n = records.min(per_batch);
        batch.clear();
        batch.extend_from_slice(&[0; 8]); // length and CRC, filled below
        for i in 0..n {
            batch.extend_from_slice(&(i as u64).to_be_bytes());
            batch.extend_from_slice(&value);
        }
        let crc = crc32c::crc32c(&batch[8..]);
        let len = (batch.len() - 4) as u32;
        batch[..4].copy_from_slice(&len.to_be_bytes());
        batch[4..8].copy_from_slice(&crc.to_be_bytes());
        if in_flight == IN_FLIGHT {
            socket.read_exact(&mut ack)?;
            in_flight -= 1;
        }
        socket.write_all(&batch)?;
        in_flight += 1;
        records -= n;
        sent.record_bytes += (n * args.record_size) as u64;
        sent.batch_bytes += (batch.len() - 8) as u64;
    }
    socket.shutdown(std::net::Shutdown::Write)?;
    while in_flight > 0 {
        socket.read_exact(&mut ack)?;
        in_flight -= 1;
    }
    Ok(sent)
}

/// Reads batches, checks their CRC, appends them to `file`, acknowledges
/// each; returns the bytes stored.
fn serve(mut socket: TcpStream, mut file: File) -> Result<u64> {
    socket.set_nodelay(true)?;
    let mut head = [0u8; 8];
    let mut buf = Vec::new();
    let mut stored = 0u64;
    loop {
        match socket.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(stored),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if !(4..=64 << 20).contains(&len) {
            bail!("batch length {len}");
        }
        buf.resize(len - 4, 0);
        socket.read_exact(&mut buf)?;
        if crc32c::crc32c(&buf) != crc {
            bail!("CRC mismatch");
        }
        file.write_all(&buf)?;
        stored += buf.len() as u64;
        socket.write_all(&[1])?;
    }
}
