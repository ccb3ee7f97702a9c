//! A state machine that records every applied entry, shared by the `quorum-node` binary and
//! the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, MutexGuard};

use strom_quorum::StateMachine;

/// What a [`RecordingSm`] saw: the applied entries and how many snapshots it restored.
#[derive(Debug, Default)]
pub struct Seen {
    pub entries: Vec<(u64, Vec<u8>)>,
    pub restores: usize,
}

/// A state machine keeping every entry; clones share what it saw.
#[derive(Clone, Default)]
pub struct RecordingSm {
    pub seen: Arc<Mutex<Seen>>,
}

impl RecordingSm {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn entries(&self) -> Vec<(u64, Vec<u8>)> {
        self.lock().entries.clone()
    }
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }
    pub fn restores(&self) -> usize {
        self.lock().restores
    }
}

impl StateMachine for RecordingSm {
    fn apply(&mut self, index: u64, entry: &[u8]) {
        let mut s = self.lock();
        if let Some((last, _)) = s.entries.last() {
            assert!(index > *last, "entry {index} applied after {last}");
        }
        s.entries.push((index, entry.to_vec()));
    }

    fn snapshot(&self) -> Vec<u8> {
        let s = self.lock();
        let mut out = Vec::new();
        for (i, e) in &s.entries {
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&(e.len() as u32).to_le_bytes());
            out.extend_from_slice(e);
        }
        out
    }

    fn restore(&mut self, mut snap: &[u8]) -> Result<(), String> {
        let mut entries = Vec::new();
        while !snap.is_empty() {
            let (head, rest) = snap.split_at_checked(12).ok_or("short snapshot")?;
            let (index, len) = head.split_at(8);
            let index = u64::from_le_bytes(index.try_into().map_err(|_| "bad index")?);
            let len = u32::from_le_bytes(len.try_into().map_err(|_| "bad length")?) as usize;
            let (entry, rest) = rest.split_at_checked(len).ok_or("short snapshot entry")?;
            entries.push((index, entry.to_vec()));
            snap = rest;
        }
        let mut s = self.lock();
        s.entries = entries;
        s.restores += 1;
        Ok(())
    }
}
