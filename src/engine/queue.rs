//! The signal queue: a bounded ring buffer of fixed power-of-two capacity, allocated once.
//!
//! Owned by the engine thread alone, so it needs no atomics. When it is full, [`SignalQueue::push`]
//! hands the newest item back: the caller refuses it and counts it
//! (`signals_dropped_total{reason="queue_full"}`), keeping the older signals already waiting.

/// A fixed-capacity FIFO ring. `T: Copy + Default` so the storage is plain, initialised memory.
#[derive(Debug)]
pub struct SignalQueue<T> {
    slots: Box<[T]>,
    mask: usize,
    /// Count of pushes ever made; the next slot to write is `head & mask`.
    head: usize,
    /// Count of pops ever made; the next slot to read is `tail & mask`.
    tail: usize,
}

impl<T: Copy + Default> SignalQueue<T> {
    /// Allocates the ring. `capacity` must be a power of two (the config checks it).
    ///
    /// # Panics
    /// When `capacity` is zero or not a power of two: that is a programming error, not input.
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(capacity.is_power_of_two(), "queue capacity must be a power of two, got {capacity}");
        SignalQueue { slots: vec![T::default(); capacity].into_boxed_slice(), mask: capacity - 1, head: 0, tail: 0 }
    }

    /// Appends `item`, or returns it when the queue is full.
    #[inline]
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.len() == self.slots.len() {
            return Err(item);
        }
        self.slots[self.head & self.mask] = item;
        self.head = self.head.wrapping_add(1);
        Ok(())
    }

    /// Removes and returns the oldest item.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail {
            return None;
        }
        let item = self.slots[self.tail & self.mask];
        self.tail = self.tail.wrapping_add(1);
        Some(item)
    }

    /// The oldest item, left in place.
    #[inline]
    pub fn front(&self) -> Option<&T> {
        if self.head == self.tail {
            return None;
        }
        Some(&self.slots[self.tail & self.mask])
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.head.wrapping_sub(self.tail)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == self.tail
    }

    #[inline]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The items, oldest first, left in place (for checkpoints).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (self.tail..self.head).map(move |i| &self.slots[i & self.mask])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_queue_pops_nothing() {
        let mut q = SignalQueue::<u32>::with_capacity(4);
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn full_queue_refuses_the_newest() {
        let mut q = SignalQueue::<u32>::with_capacity(4);
        for i in 0..4 {
            assert_eq!(q.push(i), Ok(()));
        }
        assert_eq!(q.push(99), Err(99));
        assert_eq!(q.len(), 4);
        assert_eq!((0..4).map(|_| q.pop()).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn wraps_around_many_times_in_order() {
        let mut q = SignalQueue::<u64>::with_capacity(8);
        let (mut next_in, mut next_out) = (0u64, 0u64);
        for round in 0..10_000u64 {
            for _ in 0..(round % 7 + 1) {
                if q.push(next_in).is_ok() {
                    next_in += 1;
                }
            }
            for _ in 0..(round % 5 + 1) {
                if let Some(v) = q.pop() {
                    assert_eq!(v, next_out);
                    next_out += 1;
                }
            }
            assert!(q.len() <= 8);
            assert_eq!(q.len() as u64, next_in - next_out);
        }
        assert!(next_out > 10_000);
    }

    #[test]
    fn capacity_one() {
        let mut q = SignalQueue::<u8>::with_capacity(1);
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Err(2));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push(3), Ok(()));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn large_capacity_fills_exactly() {
        let cap = 1 << 20;
        let mut q = SignalQueue::<u32>::with_capacity(cap);
        for i in 0..cap as u32 {
            assert!(q.push(i).is_ok());
        }
        assert_eq!(q.push(0), Err(0));
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.len(), cap - 1);
        assert_eq!(q.capacity(), cap);
    }

    #[test]
    fn counters_survive_wrapping_usize() {
        let mut q = SignalQueue::<u8>::with_capacity(2);
        q.head = usize::MAX;
        q.tail = usize::MAX;
        assert_eq!(q.push(7), Ok(()));
        assert_eq!(q.push(8), Ok(()));
        assert_eq!(q.push(9), Err(9));
        assert_eq!(q.pop(), Some(7));
        assert_eq!(q.pop(), Some(8));
        assert!(q.is_empty());
    }

    #[test]
    #[should_panic(expected = "power of two")]
    fn refuses_other_capacities() {
        let _ = SignalQueue::<u8>::with_capacity(3);
    }
}
