//! Kafka's `cooperative-sticky` assignor: a balanced assignment that moves
//! as few partitions as possible, where a partition changing owner is first
//! only revoked (left unassigned for one round) so that two members never
//! read it at the same time.

use std::collections::{BTreeMap, BTreeSet};

use super::protocol::{Assignment, Subscription};

type Tp = (String, i32);

/// The assignment for this round: balanced, sticky, and without partitions
/// that another member still owns (they follow in the next round, after the
/// owner revoked them and rejoined).
pub fn cooperative_sticky(
    members: &[(String, Subscription)],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let target = sticky(members, partitions);
    let owner = claims(members, partitions);
    target
        .into_iter()
        .map(|(m, list)| {
            let kept = list
                .into_iter()
                .filter(|tp| owner.get(tp).is_none_or(|(_, o)| *o == m))
                .collect();
            (m, kept)
        })
        .collect()
}

/// Who owns what: each member's owned partitions that still exist and
/// that it still subscribes to; a partition claimed twice belongs to the
/// claim of the newest generation.
fn claims<'a>(
    members: &'a [(String, Subscription)],
    partitions: &BTreeMap<String, i32>,
) -> BTreeMap<Tp, (i32, &'a str)> {
    let mut claims: BTreeMap<Tp, (i32, &str)> = BTreeMap::new();
    for (m, sub) in members {
        for tp in &sub.owned {
            let exists = partitions
                .get(&tp.0)
                .is_some_and(|n| tp.1 >= 0 && tp.1 < *n);
            if !exists || !sub.topics.contains(&tp.0) {
                continue;
            }
            let newer = claims.get(tp).is_none_or(|(g, _)| sub.generation > *g);
            if newer {
                claims.insert(tp.clone(), (sub.generation, m));
            }
        }
    }
    claims
}

/// The balanced, sticky target: owned partitions stay where they are
/// unless that leaves the members more than one partition apart.
pub fn sticky(
    members: &[(String, Subscription)],
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let subscribed = |m: &Subscription, topic: &str| m.topics.iter().any(|t| t == topic);
    let mut out: BTreeMap<String, BTreeSet<Tp>> = members
        .iter()
        .map(|(m, _)| (m.clone(), BTreeSet::new()))
        .collect();
    let subs: BTreeMap<&str, &Subscription> =
        members.iter().map(|(m, s)| (m.as_str(), s)).collect();

    // 1. Keep what each member owns and may still have.
    for (tp, (_, m)) in &claims(members, partitions) {
        if let Some(set) = out.get_mut(*m) {
            set.insert(tp.clone());
        }
    }

    // 2. Members above the balanced share give up their newest extras when
    //    every member takes every topic (the common case); otherwise step 4
    //    evens things out move by move.
    let all: Vec<Tp> = partitions
        .iter()
        .flat_map(|(t, n)| (0..*n).map(move |p| (t.clone(), p)))
        .filter(|(t, _)| members.iter().any(|(_, s)| subscribed(s, t)))
        .collect();
    let uniform = members
        .iter()
        .all(|(_, s)| partitions.keys().all(|t| subscribed(s, t)));
    if uniform && !members.is_empty() {
        let cap = all.len().div_ceil(members.len());
        for set in out.values_mut() {
            while set.len() > cap {
                let Some(last) = set.iter().next_back().cloned() else {
                    break;
                };
                set.remove(&last);
            }
        }
    }

    // 3. Unowned partitions go to the least-loaded member that takes the topic.
    let taken: BTreeSet<Tp> = out.values().flatten().cloned().collect();
    for tp in all.iter().filter(|tp| !taken.contains(*tp)) {
        let best = out
            .iter()
            .filter(|(m, _)| subs.get(m.as_str()).is_some_and(|s| subscribed(s, &tp.0)))
            .min_by_key(|(m, set)| (set.len(), m.as_str()))
            .map(|(m, _)| m.clone());
        if let Some(m) = best {
            if let Some(set) = out.get_mut(&m) {
                set.insert(tp.clone());
            }
        }
    }

    // 4. Move one partition at a time from the most to the least loaded
    //    member that can take it, while they are more than one apart.
    for _ in 0..all.len() {
        let mut moved = false;
        let order: Vec<(String, usize)> = {
            let mut v: Vec<(String, usize)> =
                out.iter().map(|(m, s)| (m.clone(), s.len())).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        'search: for (heavy, hn) in &order {
            for (light, ln) in order.iter().rev() {
                if hn <= &(ln + 1) {
                    break;
                }
                let Some(ls) = subs.get(light.as_str()) else {
                    continue;
                };
                let candidate = out
                    .get(heavy)
                    .and_then(|set| set.iter().rev().find(|tp| subscribed(ls, &tp.0)).cloned());
                if let Some(tp) = candidate {
                    if let Some(set) = out.get_mut(heavy) {
                        set.remove(&tp);
                    }
                    if let Some(set) = out.get_mut(light) {
                        set.insert(tp);
                    }
                    moved = true;
                    break 'search;
                }
            }
        }
        if !moved {
            break;
        }
    }
    out.into_iter()
        .map(|(m, set)| (m, set.into_iter().collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(topics: &[&str], owned: &[(&str, i32)], generation: i32) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            generation,
        }
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn a_new_member_takes_a_share_in_two_rounds() {
        let parts = counts(&[("t", 6)]);
        let owned: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        let first = vec![
            ("a".to_string(), sub(&["t"], &owned, 1)),
            ("b".to_string(), sub(&["t"], &[], -1)),
        ];
        let round1 = cooperative_sticky(&first, &parts);
        // a keeps three of its partitions; the other three are revoked, not yet b's.
        assert_eq!(round1["a"].len(), 3);
        assert!(round1["b"].is_empty());
        let second = vec![
            (
                "a".to_string(),
                sub(
                    &["t"],
                    &round1["a"]
                        .iter()
                        .map(|(t, p)| (t.as_str(), *p))
                        .collect::<Vec<_>>(),
                    2,
                ),
            ),
            ("b".to_string(), sub(&["t"], &[], -1)),
        ];
        let round2 = cooperative_sticky(&second, &parts);
        assert_eq!(round2["a"], round1["a"], "a keeps what it kept");
        assert_eq!(round2["b"].len(), 3);
        let all: BTreeSet<&Tp> = round2.values().flatten().collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn balanced_and_sticky_when_a_member_leaves() {
        let parts = counts(&[("t", 7), ("u", 2)]);
        let members = vec![
            ("a".to_string(), sub(&["t", "u"], &[], -1)),
            ("b".to_string(), sub(&["t", "u"], &[], -1)),
            ("c".to_string(), sub(&["t", "u"], &[], -1)),
        ];
        let first = sticky(&members, &parts);
        assert!(first.values().all(|l| l.len() == 3));
        // c leaves: a and b keep all they had and share c's.
        let own = |m: &str| {
            first[m]
                .iter()
                .map(|(t, p)| (t.as_str(), *p))
                .collect::<Vec<_>>()
        };
        let after = vec![
            ("a".to_string(), sub(&["t", "u"], &own("a"), 1)),
            ("b".to_string(), sub(&["t", "u"], &own("b"), 1)),
        ];
        let next = cooperative_sticky(&after, &parts);
        for m in ["a", "b"] {
            assert!(first[m].iter().all(|tp| next[m].contains(tp)));
        }
        let sizes: Vec<usize> = next.values().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 9);
        assert!(sizes.iter().max().expect("members") - sizes.iter().min().expect("members") <= 1);
    }

    #[test]
    fn different_subscriptions_and_stale_claims() {
        let parts = counts(&[("t", 4), ("u", 4)]);
        let members = vec![
            ("a".to_string(), sub(&["t"], &[("t", 0), ("t", 1)], 3)),
            // b's claim on t-0 is from an older generation; u-9 does not exist.
            ("b".to_string(), sub(&["t", "u"], &[("t", 0), ("u", 9)], 2)),
        ];
        let r = sticky(&members, &parts);
        assert!(r["a"].iter().all(|(t, _)| t == "t"));
        assert!(r["a"].contains(&("t".to_string(), 0)));
        let all: BTreeSet<&Tp> = r.values().flatten().collect();
        assert_eq!(all.len(), 8);
        let (na, nb) = (r["a"].len(), r["b"].len());
        assert!(na >= 2 && nb >= 4, "{na} {nb}");
    }

    proptest::proptest! {
        /// Whatever members own and claim: every partition of the sticky
        /// target goes to exactly one subscribed member, uniform groups are
        /// balanced to within one, and the cooperative round never hands
        /// out a partition another member still owns.
        #[test]
        fn invariants(
            n_members in 1usize..5,
            counts_in in proptest::collection::vec(1i32..7, 1..3),
            owned_bits in proptest::collection::vec(0u8..6, 0..30),
            uniform in proptest::bool::ANY,
        ) {
            let topics: Vec<String> = (0..counts_in.len()).map(|i| format!("t{i}")).collect();
            let parts: BTreeMap<String, i32> = topics.iter().cloned().zip(counts_in.iter().copied()).collect();
            let members: Vec<(String, Subscription)> = (0..n_members)
                .map(|i| {
                    let subscribed: Vec<String> = if uniform || i == 0 {
                        topics.clone()
                    } else {
                        topics.iter().take(1 + i % topics.len()).cloned().collect()
                    };
                    let owned = owned_bits
                        .iter()
                        .enumerate()
                        .filter(|(j, b)| usize::from(**b) % n_members == i && j % 2 == 0)
                        .map(|(j, b)| (topics[j % topics.len()].clone(), i32::from(*b)))
                        .collect();
                    (format!("m{i}"), Subscription { topics: subscribed, owned, generation: i as i32 })
                })
                .collect();
            let target = sticky(&members, &parts);
            let mut seen = BTreeSet::new();
            for (m, list) in &target {
                let sub = &members.iter().find(|(id, _)| id == m).expect("a member").1;
                for tp in list {
                    proptest::prop_assert!(seen.insert(tp.clone()), "{tp:?} twice");
                    proptest::prop_assert!(sub.topics.contains(&tp.0));
                }
            }
            let total: i32 = parts.values().sum();
            proptest::prop_assert_eq!(seen.len(), total as usize);
            if uniform {
                let sizes: Vec<usize> = target.values().map(Vec::len).collect();
                proptest::prop_assert!(sizes.iter().max().expect("members") - sizes.iter().min().expect("members") <= 1);
            }
            let round = cooperative_sticky(&members, &parts);
            for (m, list) in &round {
                for tp in list {
                    let other = members.iter().find(|(id, s)| id != m && s.owned.contains(tp));
                    proptest::prop_assert!(other.is_none(), "{tp:?} still owned by {other:?}");
                }
            }
        }
    }
}
