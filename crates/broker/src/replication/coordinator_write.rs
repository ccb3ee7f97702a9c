//! The group and transaction coordinators' writes to their internal
//! partitions, made as durable as an acks=all produce: a coordinator
//! answers only once every in-sync replica of the partition has what it
//! wrote, so the broker taking the partition over after a crash loads the
//! same offsets and transactions the clients were told about.
//!
//! A coordinator appends under its own locks and notes where its write
//! ended ([`Written`]); the wait happens afterwards: in the request's task
//! for the group coordinator ([`Written::replicated`]), blocking on the
//! transaction coordinator's worker thread ([`Written::replicated_blocking`]),
//! whose steps (prepare, markers, complete) must each be replicated before
//! the next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;

use super::{wait_replicated, Replicated};
use crate::metadata::LeaderEpoch;
use crate::partition::Partition;

/// Where a coordinator's write to `partition` ended, and the leader epoch
/// it was written at.
#[derive(Debug, Clone)]
pub struct Written {
    partition: Arc<Partition>,
    end: i64,
    epoch: LeaderEpoch,
}

impl Written {
    /// Everything appended to `partition` so far, this coordinator's write
    /// included (taken right after the write, under no lock).
    pub fn now(partition: Arc<Partition>) -> Written {
        let epoch = partition.replication_epoch();
        let end = partition.log.log_end_offset();
        Written {
            partition,
            end,
            epoch,
        }
    }

    /// Waits up to `timeout` for the in-sync replicas to have the write.
    pub async fn wait(&self, timeout: Duration) -> Replicated {
        let deadline = Instant::now() + timeout;
        wait_replicated(&self.partition, self.end, self.epoch, deadline).await
    }

    /// [`Written::wait`], with a failure as the coordinator answers it.
    pub async fn replicated(&self, timeout: Duration) -> Result<(), ResponseError> {
        outcome(self.wait(timeout).await)
    }

    /// [`Written::replicated`] for a blocking caller (a worker thread that
    /// holds a transaction's lock): checks the high watermark every
    /// millisecond, since the in-sync replicas answer within a fetch.
    pub fn replicated_blocking(&self, timeout: Duration) -> Result<(), ResponseError> {
        let deadline = Instant::now() + timeout;
        let p = &self.partition;
        loop {
            if p.high_watermark() >= self.end {
                return Ok(());
            }
            if p.replication_epoch() != self.epoch || !p.is_leading() {
                return outcome(Replicated::NotLeader);
            }
            if Instant::now() >= deadline {
                return outcome(Replicated::TimedOut);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Kafka's coordinators' mapping of a replication failure: a timeout (or
/// too few replicas) is COORDINATOR_NOT_AVAILABLE, so the client retries
/// here; leadership gone is NOT_COORDINATOR, so it looks the coordinator up
/// again.
fn outcome(r: Replicated) -> Result<(), ResponseError> {
    match r {
        Replicated::Yes => Ok(()),
        Replicated::TimedOut => Err(ResponseError::CoordinatorNotAvailable),
        Replicated::NotLeader => Err(ResponseError::NotCoordinator),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::NodeId;
    use strom_record::BatchBuilder;

    fn partition(dir: &std::path::Path) -> Arc<Partition> {
        let p = Partition::open(
            "__consumer_offsets",
            0,
            dir,
            Default::default(),
            crate::clock::system(),
        )
        .expect("open");
        Arc::new(p)
    }

    fn write(p: &Partition) {
        let b = BatchBuilder::new(0).record(Some(b"k"), Some(b"v")).build();
        p.append(&b).expect("append");
    }

    const ME: NodeId = NodeId(1);
    const OTHER: NodeId = NodeId(2);

    /// A write on a partition led here with a follower in the ISR.
    fn written_with_a_follower(dir: &std::path::Path) -> (Arc<Partition>, Written) {
        let p = partition(dir);
        p.set_placement(ME, ME, LeaderEpoch(1), &[ME, OTHER], &[ME, OTHER]);
        write(&p);
        let w = Written::now(p.clone());
        (p, w)
    }

    #[tokio::test]
    async fn a_write_without_followers_is_replicated_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let p = partition(dir.path());
        write(&p);
        let w = Written::now(p);
        assert_eq!(w.replicated(Duration::from_millis(1)).await, Ok(()));
        assert_eq!(w.replicated_blocking(Duration::from_millis(1)), Ok(()));
    }

    #[tokio::test]
    async fn a_write_the_followers_lack_times_out_as_coordinator_not_available() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, w) = written_with_a_follower(dir.path());
        let timeout = Duration::from_millis(20);
        assert_eq!(
            w.replicated(timeout).await,
            Err(ResponseError::CoordinatorNotAvailable)
        );
        assert_eq!(
            w.replicated_blocking(timeout),
            Err(ResponseError::CoordinatorNotAvailable)
        );
        // The follower fetches past the write: the high watermark reaches it.
        p.on_follower_fetch(OTHER, p.log.log_end_offset());
        assert_eq!(w.replicated_blocking(timeout), Ok(()));
    }

    #[tokio::test]
    async fn leadership_lost_before_the_followers_have_it_is_not_coordinator() {
        let dir = tempfile::tempdir().expect("dir");
        let (p, w) = written_with_a_follower(dir.path());
        p.set_placement(ME, OTHER, LeaderEpoch(2), &[ME, OTHER], &[ME, OTHER]);
        assert_eq!(
            w.replicated_blocking(Duration::from_secs(5)),
            Err(ResponseError::NotCoordinator)
        );
        assert_eq!(
            w.replicated(Duration::from_secs(5)).await,
            Err(ResponseError::NotCoordinator)
        );
    }
}
