//! The groups a coordinator holds, each behind its own lock.
//!
//! A request for one group locks that group only, so a commit that appends
//! to `__consumer_offsets` holds up no other group: the table's own lock is
//! held just long enough to find or add a group, never while a group's lock
//! is taken (lock order: a group, then the table). A removed group is
//! marked Dead under its lock before it leaves the table, so a request that
//! found it a moment earlier sees Dead and looks again (finding a new group
//! of that id, or none).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::state::{Group, GroupState};

/// One group, shared between the table and the requests working on it.
pub(super) type Shared = Arc<Mutex<Group>>;

/// Every group of a coordinator, by id.
#[derive(Debug, Default)]
pub(super) struct GroupTable {
    groups: Mutex<HashMap<String, Shared>>,
}

impl GroupTable {
    fn find(&self, id: &str) -> Option<Shared> {
        self.groups.lock().get(id).cloned()
    }

    /// Runs `f` on group `id` under its lock; `None` when there is none.
    pub(super) fn with<R>(&self, id: &str, f: impl FnOnce(&mut Group) -> R) -> Option<R> {
        loop {
            let shared = self.find(id)?;
            let mut g = shared.lock();
            if g.state != GroupState::Dead {
                return Some(f(&mut g));
            }
        }
    }

    /// Runs `f` on group `id` under its lock, adding it (made by `make`)
    /// first when there is none.
    pub(super) fn with_or_add<R>(
        &self,
        id: &str,
        make: impl Fn() -> Group,
        f: impl FnOnce(&mut Group) -> R,
    ) -> R {
        loop {
            let shared = {
                let mut groups = self.groups.lock();
                groups
                    .entry(id.to_string())
                    .or_insert_with(|| Arc::new(Mutex::new(make())))
                    .clone()
            };
            let mut g = shared.lock();
            if g.state != GroupState::Dead {
                return f(&mut g);
            }
        }
    }

    /// The ids of every group.
    pub(super) fn ids(&self) -> Vec<String> {
        self.groups.lock().keys().cloned().collect()
    }

    /// Every group, in no particular order (a snapshot: groups added after
    /// the call are not in it).
    pub(super) fn all(&self) -> Vec<Shared> {
        self.groups.lock().values().cloned().collect()
    }

    /// Runs `f` on group `id` under its lock, like [`GroupTable::with`];
    /// when `f` says so (`true` beside its result) the group is marked Dead
    /// and leaves the table before its lock is let go.
    pub(super) fn with_removing<R>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Group) -> (R, bool),
    ) -> Option<R> {
        loop {
            let shared = self.find(id)?;
            let mut g = shared.lock();
            if g.state == GroupState::Dead {
                continue;
            }
            let (out, remove) = f(&mut g);
            if remove {
                g.state = GroupState::Dead;
                let mut groups = self.groups.lock();
                // Unless a replay replaced the entry meanwhile.
                if groups.get(id).is_some_and(|s| Arc::ptr_eq(s, &shared)) {
                    groups.remove(id);
                }
            }
            return Some(out);
        }
    }

    /// Replaces the groups `drop` picks with `new` in one step (loading
    /// or unloading a `__consumer_offsets` partition); how many went.
    pub(super) fn replace_where(
        &self,
        drop: impl Fn(&str) -> bool,
        new: impl IntoIterator<Item = Group>,
    ) -> usize {
        let gone: Vec<Shared> = {
            let mut groups = self.groups.lock();
            let ids: Vec<String> = groups.keys().filter(|id| drop(id)).cloned().collect();
            let gone = ids.iter().filter_map(|id| groups.remove(id)).collect();
            for g in new {
                groups.insert(g.id.clone(), Arc::new(Mutex::new(g)));
            }
            gone
        };
        // After the table's lock: a group's lock is never taken under it.
        for g in &gone {
            g.lock().state = GroupState::Dead;
        }
        gone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_group_is_dead_to_whoever_held_it_and_a_new_one_takes_its_id() {
        let t = GroupTable::default();
        t.with_or_add("g", || Group::new("g", 0), |g| g.generation = 7);
        let held = t.all().pop().expect("one group");
        assert_eq!(t.with_removing("g", |g| (g.generation, true)), Some(7));
        assert_eq!(held.lock().state, GroupState::Dead);
        assert!(t.with("g", |_| ()).is_none());
        let generation = t.with_or_add("g", || Group::new("g", 0), |g| g.generation);
        assert_eq!(generation, 0, "a fresh group");
        assert_eq!(t.replace_where(|id| id == "g", [Group::new("h", 0)]), 1);
        assert_eq!(t.ids(), vec!["h".to_string()]);
        assert_eq!(t.replace_where(|_| true, []), 1);
        assert!(t.all().is_empty());
    }
}
