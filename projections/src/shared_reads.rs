//! One read of the log for every projection of a runtime that asks for the same batch.
//!
//! Every projection a node leads tails the log on its own: after an append they all wake up,
//! and all ask for "the events after checkpoint C" — the same rows, fetched and decoded once
//! per projection (nine times per batch with the read models of this crate). [`SharedReads`]
//! keys a read by `(after, limit)`: the first caller runs it, callers that arrive while it is
//! in flight or shortly after get the same decoded batch (ADR 0025).
//!
//! Sharing is safe because a non-empty answer is a gap-free prefix of the log after `after`
//! (events below the horizon never change), so a later caller may apply it as well as a
//! fresher read: it only gets fewer events per batch. Empty answers say nothing lasting (the
//! horizon moves), so they are never kept for later callers, and a caller that joined a read
//! in flight and got an empty answer reads again for itself: its empty answer always comes
//! from a read that started after it asked (which is what a catch-up's last read must prove).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use eventdesk_store::Checkpoint;

/// The key of one read: events after `.0`, at most `.1` of them.
type Key = (Checkpoint, i64);

/// One read, in flight or done.
type Cell<T> = Arc<tokio::sync::OnceCell<Arc<[T]>>>;

/// Shared batches, bounded by the number of reads and by the events they hold.
pub(crate) struct SharedReads<T> {
    inner: Mutex<Inner<T>>,
    max_reads: usize,
    max_events: usize,
}

struct Inner<T> {
    reads: HashMap<Key, (Cell<T>, usize)>,
    /// Keys from oldest to newest (each key once).
    order: VecDeque<Key>,
    /// Events held by the finished reads.
    events: usize,
}

impl<T> SharedReads<T> {
    /// Keeps at most `max_reads` reads and (beyond the newest one) `max_events` events.
    pub(crate) fn new(max_reads: usize, max_events: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                reads: HashMap::new(),
                order: VecDeque::new(),
                events: 0,
            }),
            max_reads: max_reads.max(1),
            max_events,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The events after `after` (at most `limit`): a shared answer if there is one for the same
    /// key, otherwise `read()`'s, which is then shared.
    pub(crate) async fn read<E, F, Fut>(
        &self,
        after: Checkpoint,
        limit: i64,
        read: F,
    ) -> Result<Arc<[T]>, E>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, E>>,
    {
        let key = (after, limit);
        let cell = {
            let mut g = self.lock();
            match g.reads.get(&key) {
                Some((cell, _)) => cell.clone(),
                None => {
                    let cell: Cell<T> = Arc::default();
                    g.reads.insert(key, (cell.clone(), 0));
                    g.order.push_back(key);
                    while g.order.len() > self.max_reads {
                        g.evict_oldest();
                    }
                    cell
                }
            }
        };
        let ran = std::sync::atomic::AtomicBool::new(false);
        let result = cell
            .get_or_try_init(|| async {
                ran.store(true, std::sync::atomic::Ordering::Relaxed);
                read().await.map(Arc::<[T]>::from)
            })
            .await
            .cloned();
        self.settle(key, &cell, &result);
        // An empty answer may predate this caller (the read was in flight when it came): it
        // proves nothing about the log as of now, so this caller reads for itself.
        match result {
            Ok(events) if events.is_empty() && !ran.into_inner() => {
                read().await.map(Arc::<[T]>::from)
            }
            other => other,
        }
    }

    /// Records a finished read: keeps a non-empty answer (within the bounds), forgets the rest.
    fn settle<E>(&self, key: Key, cell: &Cell<T>, result: &Result<Arc<[T]>, E>) {
        let mut g = self.lock();
        let same = |g: &Inner<T>| g.reads.get(&key).is_some_and(|(c, _)| Arc::ptr_eq(c, cell));
        match result {
            Ok(events) if !events.is_empty() => {
                if same(&g)
                    && let Some(entry) = g.reads.get_mut(&key)
                    && entry.1 == 0
                {
                    entry.1 = events.len();
                    g.events += events.len();
                    while g.events > self.max_events && g.order.len() > 1 {
                        g.evict_oldest();
                    }
                }
            }
            // Nothing to share: the next caller reads again.
            _ => {
                if same(&g) {
                    g.remove(&key);
                }
            }
        }
    }

    /// Reads held (for tests).
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let g = self.lock();
        (g.reads.len(), g.events)
    }
}

impl<T> Inner<T> {
    fn evict_oldest(&mut self) {
        if let Some(k) = self.order.pop_front()
            && let Some((_, n)) = self.reads.remove(&k)
        {
            self.events -= n;
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some((_, n)) = self.reads.remove(key) {
            self.events -= n;
            self.order.retain(|k| k != key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cp(position: i64) -> Checkpoint {
        Checkpoint {
            transaction_id: 1,
            position,
        }
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_read_and_later_callers_reuse_it() {
        let reads = Arc::new(SharedReads::<i64>::new(8, 100));
        let calls = Arc::new(AtomicUsize::new(0));
        let (go, wait) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (reads, calls, wait) = (reads.clone(), calls.clone(), wait.clone());
            tasks.push(tokio::spawn(async move {
                reads
                    .read(cp(10), 3, || {
                        let (calls, mut wait) = (calls.clone(), wait.clone());
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let _ = wait.wait_for(|g| *g).await;
                            Ok::<_, ()>(vec![11, 12, 13])
                        }
                    })
                    .await
            }));
        }
        tokio::task::yield_now().await;
        let _ = go.send(true);
        for t in tasks {
            assert_eq!(&*t.await.unwrap().unwrap(), &[11, 12, 13]);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let again = reads
            .read(cp(10), 3, || async { Ok::<_, ()>(vec![99]) })
            .await
            .unwrap();
        assert_eq!(&*again, &[11, 12, 13], "a finished read is shared");
        // Another limit is another read.
        let other = reads
            .read(cp(10), 1, || async { Ok::<_, ()>(vec![11]) })
            .await
            .unwrap();
        assert_eq!(&*other, &[11]);
        assert_eq!(reads.held(), (2, 4));
    }

    #[tokio::test]
    async fn empty_answers_and_errors_are_not_kept() {
        let reads = SharedReads::<i64>::new(8, 100);
        let empty = reads
            .read(cp(5), 10, || async { Ok::<_, ()>(vec![]) })
            .await
            .unwrap();
        assert!(empty.is_empty());
        assert_eq!(reads.held(), (0, 0));
        let err = reads
            .read(cp(5), 10, || async { Err::<Vec<i64>, _>("down") })
            .await;
        assert_eq!(err.unwrap_err(), "down");
        assert_eq!(reads.held(), (0, 0));
        let fresh = reads
            .read(cp(5), 10, || async { Ok::<_, ()>(vec![6]) })
            .await
            .unwrap();
        assert_eq!(
            &*fresh,
            &[6],
            "after an empty answer and an error, the log is read again"
        );
    }

    #[tokio::test]
    async fn a_caller_that_joined_an_empty_read_reads_again_for_itself() {
        let reads = Arc::new(SharedReads::<i64>::new(8, 100));
        let calls = Arc::new(AtomicUsize::new(0));
        let (go, wait) = tokio::sync::watch::channel(false);
        let first = {
            let (reads, calls, wait) = (reads.clone(), calls.clone(), wait.clone());
            tokio::spawn(async move {
                reads
                    .read(cp(1), 5, || {
                        let (calls, mut wait) = (calls.clone(), wait.clone());
                        async move {
                            // The first read finds nothing; any later one finds event 2.
                            let n = calls.fetch_add(1, Ordering::SeqCst);
                            let _ = wait.wait_for(|g| *g).await;
                            Ok::<_, ()>(if n == 0 { vec![] } else { vec![2] })
                        }
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let joiner = {
            let (reads, calls) = (reads.clone(), calls.clone());
            tokio::spawn(async move {
                reads
                    .read(cp(1), 5, || {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, ()>(vec![2])
                        }
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let _ = go.send(true);
        assert!(first.await.unwrap().unwrap().is_empty());
        assert_eq!(&*joiner.await.unwrap().unwrap(), &[2]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_oldest_reads_go_first_when_a_bound_is_passed() {
        let reads = SharedReads::<i64>::new(3, 5);
        for p in 0..3 {
            reads
                .read(cp(p), 2, || async move { Ok::<_, ()>(vec![p + 1, p + 2]) })
                .await
                .unwrap();
        }
        // 6 events > 5: the oldest read (after 0) is gone.
        assert_eq!(reads.held(), (2, 4));
        let reread = reads
            .read(cp(0), 2, || async { Ok::<_, ()>(vec![100]) })
            .await
            .unwrap();
        assert_eq!(&*reread, &[100], "an evicted read is read again");
        // Reads bound: 3 at most.
        reads
            .read(cp(7), 2, || async { Ok::<_, ()>(vec![8]) })
            .await
            .unwrap();
        let (n, events) = reads.held();
        assert!(n <= 3 && events <= 5, "held {n} reads, {events} events");
        // A single read larger than the event bound is still shared (it is the newest).
        let big = SharedReads::<i64>::new(3, 2);
        big.read(cp(0), 9, || async { Ok::<_, ()>(vec![1, 2, 3, 4]) })
            .await
            .unwrap();
        assert_eq!(big.held(), (1, 4));
    }
}
