//! The signal ids seen last, to refuse duplicates: a ring of ids and an open-addressing index
//! into it, both allocated once.
//!
//! The ring holds the ids themselves (oldest overwritten first); the index holds, per slot, the
//! ring position plus one (zero: empty), found by a keyed hash of the id and confirmed by
//! comparing the id in the ring, so a hit is never a false one. Linear probing at a load of at
//! most one half keeps probes short, and removal shifts later entries back rather than leaving
//! tombstones, so the table never degrades however long the daemon runs.
//!
//! Compared with a `HashSet<SignalId>` beside the ring this takes 4 bytes per slot instead of 33
//! (about 2.7 MiB in all for 65,536 ids instead of 11), and the hash costs a few nanoseconds
//! instead of SipHash's few dozen.

use crate::domain::types::SignalId;

#[derive(Debug)]
pub struct RecentIds {
    /// Grows to `capacity` (reserved at start, so never reallocated), then is overwritten in
    /// place: pages are touched as ids arrive, not all at start-up.
    ring: Vec<SignalId>,
    /// When each id in `ring` was remembered (Unix seconds), at the same position.
    times: Vec<u32>,
    capacity: usize,
    /// The ring position written next.
    next: usize,
    table: Box<[u32]>,
    mask: usize,
    key: [u64; 4],
    /// Tests force every id to one home slot, to exercise long probe runs and wrap-around.
    #[cfg(test)]
    fixed_home: Option<usize>,
}

impl RecentIds {
    /// Remembers up to `capacity` ids (at least one), with a random hash key.
    pub fn new(capacity: usize) -> RecentIds {
        RecentIds::with_key(capacity, std::array::from_fn(|_| rand::random()))
    }

    fn with_key(capacity: usize, key: [u64; 4]) -> RecentIds {
        let capacity = capacity.clamp(1, u32::MAX as usize / 2);
        let slots = (2 * capacity).next_power_of_two();
        RecentIds {
            ring: Vec::with_capacity(capacity),
            times: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            table: vec![0; slots].into_boxed_slice(),
            mask: slots - 1,
            key,
            #[cfg(test)]
            fixed_home: None,
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    #[inline]
    fn home(&self, id: &SignalId) -> usize {
        #[cfg(test)]
        if let Some(h) = self.fixed_home {
            return h & self.mask;
        }
        id.keyed_hash(self.key) as usize & self.mask
    }

    /// The table slot that points at `id`, if it is remembered.
    #[inline]
    fn find(&self, id: &SignalId) -> Option<usize> {
        let mut i = self.home(id);
        loop {
            match self.table[i] {
                0 => return None,
                e if self.ring[e as usize - 1] == *id => return Some(i),
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    #[inline]
    pub fn contains(&self, id: &SignalId) -> bool {
        self.find(id).is_some()
    }

    /// Remembers `id` as of `at` (Unix seconds), forgetting the oldest when full; returns when
    /// the forgotten one was remembered. Remembering an id already there does nothing.
    pub fn insert(&mut self, id: SignalId, at: u32) -> Option<u32> {
        if self.contains(&id) {
            return None;
        }
        self.insert_new(id, at)
    }

    /// Remembers an id the caller has just found absent with [`RecentIds::contains`], saving
    /// a second lookup on the order path; returns when the id it forgot was remembered.
    pub fn insert_new(&mut self, id: SignalId, at: u32) -> Option<u32> {
        debug_assert!(!self.contains(&id), "insert_new of an id already remembered");
        let pos = self.next;
        let mut forgot = None;
        if self.ring.len() == self.capacity {
            let old = self.ring[pos];
            if let Some(slot) = self.find(&old) {
                self.remove_slot(slot);
            }
            self.ring[pos] = id;
            forgot = Some(self.times[pos]);
            self.times[pos] = at;
        } else {
            // Within the capacity reserved at start: no allocation.
            self.ring.push(id);
            self.times.push(at);
        }
        let mut i = self.home(&id);
        while self.table[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.table[i] = pos as u32 + 1;
        self.next = (pos + 1) % self.capacity;
        forgot
    }

    /// Empties a slot and moves later entries of its probe run back, so every entry stays
    /// reachable from its home slot without tombstones.
    fn remove_slot(&mut self, mut hole: usize) {
        self.table[hole] = 0;
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let e = self.table[j];
            if e == 0 {
                return;
            }
            let home = self.home(&self.ring[e as usize - 1]);
            // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.table[hole] = e;
                self.table[j] = 0;
                hole = j;
            }
        }
    }

    /// The `n` ids remembered last, oldest first.
    pub fn last(&self, n: usize) -> Vec<SignalId> {
        self.last_with_times(n).into_iter().map(|(id, _)| id).collect()
    }

    /// The `n` ids remembered last with when each was, oldest first.
    pub fn last_with_times(&self, n: usize) -> Vec<(SignalId, u32)> {
        let len = self.ring.len();
        let n = n.min(len);
        // Until the ring is full, `next` is its length, so this is the tail of what was pushed.
        (0..n)
            .map(|i| {
                let p = (self.next + len - n + i) % len;
                (self.ring[p], self.times[p])
            })
            .collect()
    }

    /// The ids remembered at or after `since` (Unix seconds), oldest first, with their times.
    pub fn since(&self, since: u32) -> Vec<(SignalId, u32)> {
        self.last_with_times(self.ring.len()).into_iter().filter(|(_, t)| *t >= since).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn id(n: u64) -> SignalId {
        SignalId::with_counter(&SignalId::parse("sig").expect("id"), n)
    }

    #[test]
    fn remembers_the_last_ids_and_forgets_the_oldest() {
        let mut r = RecentIds::new(3);
        assert!(r.is_empty());
        r.insert(id(0), 0);
        assert_eq!(r.last(5), vec![id(0)], "a ring not yet full gives what it holds");
        for n in 1..3 {
            r.insert(id(n), 0);
        }
        assert!((0..3).all(|n| r.contains(&id(n))));
        r.insert(id(1), 0);
        assert_eq!(r.len(), 3, "an id already there is not added twice");
        r.insert(id(3), 0);
        assert!(!r.contains(&id(0)));
        assert!((1..4).all(|n| r.contains(&id(n))));
        assert_eq!(r.last(2), vec![id(2), id(3)]);
        assert_eq!(r.last(10), vec![id(1), id(2), id(3)]);
    }

    /// Through inserts, duplicates and evictions the index answers as a plain list would: with
    /// real hashes, and with every id sent to one home slot (one long probe run, wrapping past
    /// the end of the table), where removal must still keep every id reachable.
    #[test]
    fn agrees_with_a_model_through_long_runs_of_inserts_and_evictions() {
        for (key, fixed_home) in [([1, 2, 3, 4], None), ([0; 4], Some(0)), ([5; 4], Some(usize::MAX - 3))] {
            let cap = 37;
            let mut r = RecentIds::with_key(cap, key);
            r.fixed_home = fixed_home;
            let mut model: VecDeque<SignalId> = VecDeque::new();
            let mut x = 12345u64;
            for _ in 0..5_000 {
                // Reuse a small id space so duplicates and re-inserts after eviction happen.
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let n = (x >> 33) % 100;
                let i = id(n);
                assert_eq!(r.contains(&i), model.contains(&i), "id {n}");
                if !model.contains(&i) {
                    if model.len() == cap {
                        model.pop_front();
                    }
                    model.push_back(i);
                }
                r.insert(i, 0);
                assert_eq!(r.len(), model.len());
            }
            for n in 0..100 {
                assert_eq!(r.contains(&id(n)), model.contains(&id(n)), "id {n}");
            }
            assert_eq!(r.last(cap), model.iter().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn ids_differing_in_any_byte_hash_apart() {
        let key = [1, 2, 3, 4];
        let a = SignalId::parse("abcdefghijklmnopqrstuvwxyz012345").expect("id");
        for i in 0..32 {
            let mut s = a.as_str().as_bytes().to_vec();
            s[i] = b'_';
            let b = SignalId::parse(std::str::from_utf8(&s).expect("ascii")).expect("id");
            assert_ne!(a.keyed_hash(key), b.keyed_hash(key), "byte {i}");
        }
        let short = SignalId::parse("abc").expect("id");
        let padded = SignalId::parse("abc0").expect("id");
        assert_ne!(short.keyed_hash(key), padded.keyed_hash(key));
        assert_eq!(SignalId::default(), SignalId::parse("0").expect("id"));
    }
}
