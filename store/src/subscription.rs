//! Waking subscribers.
//!
//! LISTEN/NOTIFY only *wakes* readers; it carries no data, and readers always re-read the log
//! below the horizon. A lost notification therefore costs latency, never data: every waiter
//! also polls with a bounded interval.
//!
//! Appends do not `NOTIFY` inside their transaction (that would take PostgreSQL's global
//! notify-queue lock on every commit and serialise group commit). Instead a local append wakes
//! local readers at once, and one background task sends a coalesced `pg_notify` for other nodes.

use crate::{Checkpoint, EventStore, RecordedEvent, Result};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
pub use tokio_util::sync::CancellationToken as StopToken;

/// The channel eventdesk notifies on.
pub const CHANNEL: &str = "eventdesk_events";

/// A wake-up signal shared by the store and its readers in one process.
#[derive(Clone, Debug)]
pub struct Waker {
    tx: Arc<watch::Sender<u64>>,
    outbound: Arc<Notify>,
}

impl Default for Waker {
    fn default() -> Self {
        Self::new()
    }
}

impl Waker {
    /// A new signal.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::channel(0).0),
            outbound: Arc::new(Notify::new()),
        }
    }

    /// Wakes local readers (after a local commit or a notification from another node).
    pub fn wake(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Wakes local readers and asks the notifier task to tell other nodes.
    pub fn wake_all(&self) {
        self.wake();
        self.outbound.notify_one();
    }

    /// A receiver to wait on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Runs the LISTEN side (wakes local readers on other nodes' appends) and the coalesced
    /// NOTIFY side until `stop`. Reconnects with back-off; each reconnect wakes readers, since
    /// notifications may have been missed meanwhile.
    pub fn spawn_background(&self, pool: PgPool, stop: StopToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let listen = me.clone().listen_loop(pool.clone(), stop.clone());
            let notify = me.notify_loop(pool, stop.clone());
            tokio::join!(listen, notify);
        })
    }

    async fn listen_loop(self, pool: PgPool, stop: StopToken) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let run = async {
                let mut l = PgListener::connect_with(&pool).await?;
                l.listen(CHANNEL).await?;
                self.wake();
                loop {
                    l.recv().await?;
                    self.wake();
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                r = run => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "event listener lost; reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn notify_loop(self, pool: PgPool, stop: StopToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.outbound.notified() => {}
            }
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "pg_notify failed; other nodes will poll");
            }
        }
    }
}

/// Waits for news on `rx` or until `max_wait`, whichever is first.
pub async fn wait_for_news(rx: &mut watch::Receiver<u64>, max_wait: Duration) {
    let _ = tokio::time::timeout(max_wait, rx.changed()).await;
}

/// A simple pull subscription over the global log that remembers its own position in memory.
/// Durable consumers (projections, the integration bus) keep their checkpoint in the database
/// instead and use `read_all` directly with the same waiting rule.
pub struct Subscription<S: EventStore + ?Sized> {
    store: Arc<S>,
    checkpoint: Checkpoint,
    batch: i64,
    rx: watch::Receiver<u64>,
    max_poll: Duration,
}

impl<S: EventStore + ?Sized> Subscription<S> {
    /// Subscribes after `from`.
    pub fn new(store: Arc<S>, waker: &Waker, from: Checkpoint, batch: i64) -> Self {
        Self {
            store,
            checkpoint: from,
            batch,
            rx: waker.subscribe(),
            max_poll: Duration::from_millis(500),
        }
    }

    /// The position after the last delivered event.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// The next non-empty batch, waiting as long as needed.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>> {
        let mut poll = Duration::from_millis(5);
        loop {
            self.rx.borrow_and_update();
            let events = self.store.read_all(self.checkpoint, self.batch).await?;
            if let Some(last) = events.last() {
                self.checkpoint = last.checkpoint();
                return Ok(events);
            }
            wait_for_news(&mut self.rx, poll).await;
            // Woken or not, nothing may be readable yet because an older transaction holds the
            // horizon; back off gently up to the bound.
            poll = (poll * 2).min(self.max_poll);
        }
    }
}
