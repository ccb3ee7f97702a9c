//! Logging what clients do wrong without letting them fill the disk.
//!
//! A flood of malformed frames used to write one INFO line each (112 MB of
//! log from 0.7 million frames). Each kind of event now has a
//! [`LogLimit`]: a burst of lines, then one line per interval that says how
//! many were left out. Anything a client chose (names, ids, error text
//! quoting its bytes) goes through [`Escaped`], so control characters and
//! terminal escapes cannot forge or garble log lines.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket for one kind of log line: `burst` lines at once, then one
/// per `every`. Pure: the caller passes the time in.
#[derive(Debug, Clone)]
pub struct LogBudget {
    burst: u32,
    every: Duration,
    tokens: u32,
    /// When the bucket last gained a token (or was created).
    refilled: Option<Instant>,
    /// Lines left out since the last one written.
    suppressed: u64,
}

impl LogBudget {
    /// A full bucket.
    pub const fn new(burst: u32, every: Duration) -> LogBudget {
        LogBudget {
            burst,
            every,
            tokens: burst,
            refilled: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be written at `now`: `Some(n)` with the number of
    /// lines left out before it, or `None` (counted as left out).
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        let since = *self.refilled.get_or_insert(now);
        if self.tokens < self.burst && !self.every.is_zero() {
            let gained =
                (now.saturating_duration_since(since).as_nanos() / self.every.as_nanos()) as u64;
            if gained > 0 {
                self.tokens = (self.tokens as u64 + gained).min(self.burst as u64) as u32;
                self.refilled = Some(now);
            }
        } else {
            self.refilled = Some(now);
        }
        if self.tokens == 0 {
            self.suppressed += 1;
            return None;
        }
        self.tokens -= 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// A [`LogBudget`] shared by every connection (a `static` per kind of line).
#[derive(Debug)]
pub struct LogLimit(Mutex<LogBudget>);

impl LogLimit {
    /// `burst` lines, then one per `every`.
    pub const fn new(burst: u32, every: Duration) -> LogLimit {
        LogLimit(Mutex::new(LogBudget::new(burst, every)))
    }

    /// `Some(lines left out before this one)` if a line may be written now.
    pub fn check(&self) -> Option<u64> {
        let mut b = self.0.lock().unwrap_or_else(|p| p.into_inner());
        b.check(Instant::now())
    }
}

/// Malformed frames, request headers and request bodies.
pub static BAD_REQUESTS: LogLimit = LogLimit::new(20, Duration::from_secs(1));
/// Connections refused by `max.connections.per.ip`.
pub static REFUSED: LogLimit = LogLimit::new(10, Duration::from_secs(1));
/// `accept()` failures (descriptors exhausted and the like).
pub static ACCEPT_FAILED: LogLimit = LogLimit::new(1, Duration::from_secs(10));
/// Connections closed for holding memory (stalled frames and responses).
pub static CLOSED_FOR_MEMORY: LogLimit = LogLimit::new(10, Duration::from_secs(1));

/// Shows client-chosen text with control characters, and anything else
/// that is not printable, escaped as `\n`, `\u{1b}`…; the text between
/// stays as it is (UTF-8 names stay readable).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.0.chars() {
            if c.is_control() || c == '\u{feff}' || ('\u{2028}'..='\u{2029}').contains(&c) {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else if c == '\\' {
                f.write_str("\\\\")?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Bytes a client sent as a name, as text: invalid UTF-8 shows as `\xNN`,
/// the rest as [`Escaped`] does.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&Escaped(chunk.valid()).to_string());
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_line_per_interval_counting_the_rest() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(3, Duration::from_secs(1));
        assert_eq!(b.check(t0), Some(0));
        assert_eq!(b.check(t0), Some(0));
        assert_eq!(b.check(t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(b.check(t0 + Duration::from_millis(10)), None);
        }
        assert_eq!(
            b.check(t0 + Duration::from_millis(1100)),
            Some(1000),
            "the next line says how many were left out"
        );
        assert_eq!(b.check(t0 + Duration::from_millis(1200)), None);
        // A long quiet spell refills the burst, no more.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(b.check(later), Some(1));
        assert_eq!(b.check(later), Some(0));
        assert_eq!(b.check(later), Some(0));
        assert_eq!(b.check(later), None);
    }

    #[test]
    fn a_million_events_write_a_bounded_number_of_lines() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(20, Duration::from_secs(1));
        let mut lines = 0;
        for i in 0..1_000_000u64 {
            // A million events over 10 seconds.
            if b.check(t0 + Duration::from_micros(i * 10)).is_some() {
                lines += 1;
            }
        }
        assert!(lines <= 20 + 10, "{lines} lines");
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_escaped() {
        assert_eq!(Escaped("topic-1").to_string(), "topic-1");
        assert_eq!(Escaped("a\nb\x1b[31m").to_string(), "a\\nb\\u{1b}[31m");
        assert_eq!(Escaped("tëst\\").to_string(), "tëst\\\\");
        assert_eq!(escape_bytes(b"ok\xff\xfe\n"), "ok\\xff\\xfe\\n");
    }
}
