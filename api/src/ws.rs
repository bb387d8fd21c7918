//! Live events over WebSocket: `GET /api/v1/ws` (ADR 0019).
//!
//! **Owns:** the per-process [`LiveHub`] — one tailer task that reads the event log once, below
//! the gap-free horizon and in log order (woken by the store's NOTIFY wake-up, polling with
//! back-off), turns incident events into live messages (`incident_created`,
//! `incident_updated` with the changed fields, `sla_breach_warning`) serialised once, and fans
//! them out to per-tenant broadcast channels — and the WebSocket sessions: authentication (the
//! `authorize` middleware, with the JWT or API key in the header or in `?access_token=`),
//! resume from a log position (`?after=<txid>:<position>`, a tenant-filtered catch-up read
//! bounded by a retention window), the hand-over from catch-up to live without gaps or
//! duplicates, a bounded queue per connection (a slow consumer is closed with
//! [`CLOSE_SLOW_CONSUMER`]), ping keepalive and an idle timeout.
//!
//! **Must not:** open a database connection per client at steady state (only the catch-up of a
//! resuming client reads the log, once, on connect), keep a checkpoint (a live stream is not a
//! durable subscriber: the client keeps its position), send one tenant's event to another
//! tenant's client (the tenant comes from the credential and selects the channel), or let a
//! client grow the server's memory (every buffer is bounded).
//!
//! Close codes: `1001` server shutting down, [`CLOSE_IDLE`] no frame from the client within
//! the idle timeout, [`CLOSE_SLOW_CONSUMER`], [`CLOSE_RESUME_GONE`] the resume position is
//! outside the retention window (refetch over REST, then connect without `after`),
//! `1011` the catch-up read failed.

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use eventdesk_domain::incident::IncidentEvent;
use eventdesk_domain::{DomainEvent, TenantId};
use eventdesk_store::subscription::wait_for_news;
use eventdesk_store::{Checkpoint, EventStore, PgEventStore, RecordedEvent};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Close code: the client did not read fast enough and its queue filled.
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
/// Close code: no frame (not even a pong) from the client within the idle timeout.
pub const CLOSE_IDLE: u16 = 4001;
/// Close code: the resume position is outside the retention window; refetch, then reconnect
/// without `after`.
pub const CLOSE_RESUME_GONE: u16 = 4410;
/// How long the server keeps trying to deliver a close frame to a client that is not reading.
const CLOSE_GRACE: Duration = Duration::from_secs(30);
/// Events per read of the tailer and of a catch-up.
const READ_BATCH: i64 = 500;
/// The stream type whose events are pushed.
const STREAM: &str = "incident";

/// Tuning of live events.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// `EVENTDESK_WS_BUFFER` (default 256): messages queued per connection before it is closed
    /// as a slow consumer.
    pub buffer: usize,
    /// `EVENTDESK_WS_CHANNEL` (default 1024): messages a tenant's broadcast ring holds.
    pub channel: usize,
    /// `EVENTDESK_WS_PING_SECS` (default 30): keepalive ping period.
    pub ping: Duration,
    /// `EVENTDESK_WS_IDLE_SECS` (default 90): close after this long without a client frame.
    pub idle: Duration,
    /// `EVENTDESK_WS_RETENTION_SECS` (default 86400): how old a resume position may be.
    pub retention: Duration,
    /// `EVENTDESK_WS_CATCHUP_MAX` (default 10000): most of the tenant's log events a resume
    /// may read before the client is told to refetch.
    pub catchup_max: usize,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            buffer: 256,
            channel: 1024,
            ping: Duration::from_secs(30),
            idle: Duration::from_secs(90),
            retention: Duration::from_secs(86_400),
            catchup_max: 10_000,
        }
    }
}

/// A log position as clients see it: `<transaction id>:<global position>`.
pub fn format_position(cp: Checkpoint) -> String {
    format!("{}:{}", cp.transaction_id, cp.position)
}

/// Parses a position written by [`format_position`].
pub fn parse_position(s: &str) -> Option<Checkpoint> {
    let (t, p) = s.split_once(':')?;
    Some(Checkpoint {
        transaction_id: t.parse().ok()?,
        position: p.parse().ok().filter(|p: &i64| *p >= 0)?,
    })
}

/// One live message, serialised once for every client of its tenant.
#[derive(Debug)]
pub struct LiveMessage {
    /// Its log position.
    pub at: Checkpoint,
    /// The JSON text.
    pub text: Utf8Bytes,
}

/// The shared state of the hub: the tailer's position and the tenants' channels, under one
/// lock so that a subscriber reads the position and joins the channel atomically with respect
/// to publication (nothing published after the position it reads can be missed).
#[derive(Debug)]
struct HubState {
    head: Checkpoint,
    channels: HashMap<TenantId, broadcast::Sender<Arc<LiveMessage>>>,
}

#[derive(Debug)]
struct HubInner {
    config: LiveConfig,
    state: Mutex<HubState>,
    stop: CancellationToken,
}

/// The per-process fan-out of live events (cheap to clone).
#[derive(Debug, Clone)]
pub struct LiveHub {
    inner: Arc<HubInner>,
}

impl LiveHub {
    /// A hub whose tailer will start after `head` (the log's head when the server starts).
    pub fn new(config: LiveConfig, head: Checkpoint) -> Self {
        Self {
            inner: Arc::new(HubInner {
                config,
                state: Mutex::new(HubState {
                    head,
                    channels: HashMap::new(),
                }),
                stop: CancellationToken::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LiveConfig {
        &self.inner.config
    }

    /// Closes every session (server shutdown) and stops the tailer.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic under the lock leaves a consistent map: keep using it.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Joins `tenant`'s channel; returns it with the position of the last message published
    /// before (every later message reaches the receiver).
    fn subscribe(&self, tenant: TenantId) -> (broadcast::Receiver<Arc<LiveMessage>>, Checkpoint) {
        let capacity = self.inner.config.channel.max(1);
        let mut st = self.lock();
        let head = st.head;
        let rx = st
            .channels
            .entry(tenant)
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe();
        (rx, head)
    }

    /// Forgets `tenant`'s channel if nobody listens any more.
    fn release(&self, tenant: TenantId) {
        let mut st = self.lock();
        if st
            .channels
            .get(&tenant)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            st.channels.remove(&tenant);
        }
    }

    /// Publishes one message of `tenant` and moves the head to it.
    fn publish(&self, tenant: TenantId, msg: LiveMessage) {
        let mut st = self.lock();
        st.head = st.head.max(msg.at);
        if let Some(tx) = st.channels.get(&tenant)
            && tx.send(Arc::new(msg)).is_err()
        {
            st.channels.remove(&tenant);
        }
    }

    /// Moves the head past events that produced no message.
    fn advance(&self, to: Checkpoint) {
        let mut st = self.lock();
        st.head = st.head.max(to);
    }

    fn head(&self) -> Checkpoint {
        self.lock().head
    }

    /// The tailer: reads the log once for the whole process and publishes, until `stop` or
    /// [`shutdown`](Self::shutdown).
    pub async fn run(self, store: PgEventStore, stop: CancellationToken) {
        let mut cp = self.head();
        let mut rx = store.waker().subscribe();
        let min_poll = Duration::from_millis(5);
        let max_poll = Duration::from_millis(500);
        let mut poll = min_poll;
        loop {
            if stop.is_cancelled() || self.inner.stop.is_cancelled() {
                return;
            }
            rx.borrow_and_update();
            match store.read_all(cp, READ_BATCH).await {
                Ok(events) if !events.is_empty() => {
                    for ev in &events {
                        if let Some(msg) = live_message(ev) {
                            self.publish(ev.tenant_id, msg);
                        }
                        cp = ev.checkpoint();
                    }
                    self.advance(cp);
                    poll = min_poll;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "live events: log read failed"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.inner.stop.cancelled() => return,
                () = wait_for_news(&mut rx, poll) => {}
            }
            poll = (poll * 2).min(max_poll);
        }
    }
}

/// The live message of a log event, if it is one clients get.
pub fn live_message(ev: &RecordedEvent) -> Option<LiveMessage> {
    let body = live_body(ev)?;
    Some(LiveMessage {
        at: ev.checkpoint(),
        text: Utf8Bytes::from(body.to_string()),
    })
}

/// The JSON of a live message (ADR 0019 has the shapes): common envelope, `data` per type.
pub fn live_body(ev: &RecordedEvent) -> Option<Value> {
    if ev.stream_type != STREAM {
        return None;
    }
    let decoded = IncidentEvent::decode(&ev.event_type, &ev.data).ok()?;
    let incident_id = ev.stream_id.0;
    let (kind, data) = match &decoded {
        IncidentEvent::IncidentCreated(c) => (
            "incident_created",
            json!({ "incident": {
                "id": c.id.0,
                "incident_number": c.number.to_string(),
                "title": c.title.as_str(),
                "description": c.description.as_str(),
                "status": "new",
                "priority": c.priority,
                "impact": c.impact,
                "urgency": c.urgency,
                "category_id": c.category_id.map(|x| x.0),
                "team_id": c.team_id.map(|x| x.0),
                "assignee_id": c.assignee_id.map(|x| x.0),
                "reporter_id": c.reporter_id.0,
                "ci_id": c.ci_id.map(|x| x.0),
                "created_at": c.at,
                "version": ev.version,
            }}),
        ),
        IncidentEvent::SlaWarningIssued(w) => (
            "sla_breach_warning",
            json!({
                "incident_id": incident_id,
                "metric": w.metric,
                "threshold": w.threshold,
                "cycle": w.cycle,
                "crossed_at": w.crossed_at,
                "breached": false,
            }),
        ),
        IncidentEvent::SlaBreached(b) => (
            "sla_breach_warning",
            json!({
                "incident_id": incident_id,
                "metric": b.metric,
                "threshold": 100,
                "cycle": b.cycle,
                "crossed_at": b.crossed_at,
                "breached": true,
            }),
        ),
        other => {
            let changes = other.history();
            if changes.is_empty() {
                return None;
            }
            let fields: Vec<&str> = changes.iter().map(|c| c.field).collect();
            let changes: Vec<Value> = changes
                .iter()
                .map(|c| json!({"field_name": c.field, "old_value": c.old, "new_value": c.new}))
                .collect();
            (
                "incident_updated",
                json!({
                    "incident_id": incident_id,
                    "version": ev.version,
                    "changed_fields": fields,
                    "changes": changes,
                }),
            )
        }
    };
    Some(json!({
        "type": kind,
        "position": format_position(ev.checkpoint()),
        "event_id": ev.event_id,
        "event_type": decoded.event_type(),
        "tenant_id": ev.tenant_id.0,
        "incident_id": incident_id,
        "occurred_at": ev.recorded_at,
        "actor": ev.metadata.actor,
        "data": data,
    }))
}

/// The query of `GET /api/v1/ws`: `access_token` (read by authentication) and `after`.
fn parse_query(raw: Option<&str>) -> Result<Option<Checkpoint>, ApiError> {
    let mut after = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "access_token" => {}
            "after" => {
                after = Some(parse_position(&v).ok_or_else(|| {
                    ApiError::field("after", "expected a position <transaction_id>:<position>")
                })?);
            }
            other => return Err(ApiError::field(other, "unknown query parameter")),
        }
    }
    Ok(after)
}

/// `GET /api/v1/ws`: upgrades to a WebSocket of the caller's tenant's live events.
/// Requesters (role `user`) see only their own incidents elsewhere, so they are refused here.
pub async fn connect(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if principal.is_requester() {
        return Err(ApiError::Forbidden);
    }
    let after = parse_query(raw.as_deref())?;
    let hub = state.live.clone();
    let tenant = principal.tenant;
    let actor = principal.actor_label();
    Ok(ws
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| async move {
            tracing::info!(tenant_id = %tenant, actor, resume = after.is_some(), "live client connected");
            let reason = session(state, hub, tenant, after, socket).await;
            tracing::info!(tenant_id = %tenant, actor, reason, "live client disconnected");
        }))
}

/// A close frame.
fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Why a session ended (for the log line).
type Ended = &'static str;

/// One client, from upgrade to close.
async fn session(
    state: AppState,
    hub: LiveHub,
    tenant: TenantId,
    after: Option<Checkpoint>,
    socket: WebSocket,
) -> Ended {
    let cfg = hub.config().clone();
    // Join the live channel first: everything published from now on is buffered in the ring.
    let (rx, head) = hub.subscribe(tenant);
    let (mut sink, mut stream) = socket.split();

    // The reader: keepalive bookkeeping and the client's close.
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    let gone = CancellationToken::new();
    let reader = {
        let (last_seen, gone) = (last_seen.clone(), gone.clone());
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                if let Ok(mut t) = last_seen.lock() {
                    *t = Instant::now();
                }
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
            gone.cancel();
        })
    };
    let ended = run_session(
        &state, &hub, &cfg, tenant, after, head, rx, &mut sink, &gone, &last_seen,
    )
    .await;
    reader.abort();
    hub.release(tenant);
    ended
}

/// Catch-up, then live. Returns why it ended; every exit path has sent its close frame.
#[allow(clippy::too_many_arguments)]
async fn run_session<S>(
    state: &AppState,
    hub: &LiveHub,
    cfg: &LiveConfig,
    tenant: TenantId,
    after: Option<Checkpoint>,
    head: Checkpoint,
    rx: broadcast::Receiver<Arc<LiveMessage>>,
    sink: &mut S,
    gone: &CancellationToken,
    last_seen: &Arc<Mutex<Instant>>,
) -> Ended
where
    S: futures::Sink<Message> + Unpin,
{
    let hello = json!({
        "type": "connected",
        "tenant_id": tenant.0,
        "position": format_position(after.unwrap_or(head)),
        "resumed": after.is_some(),
    });
    if sink
        .send(Message::Text(Utf8Bytes::from(hello.to_string())))
        .await
        .is_err()
    {
        return "send failed";
    }
    let mut last = head;
    if let Some(after) = after {
        match catch_up(state, cfg, tenant, after, sink, gone).await {
            Ok(cp) => last = cp,
            Err(CatchUp::Gone) => {
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    sink.send(close(
                        CLOSE_RESUME_GONE,
                        "resume position outside the retention window; refetch",
                    )),
                )
                .await;
                return "resume position outside the retention window";
            }
            Err(CatchUp::Failed) => {
                let _ =
                    tokio::time::timeout(CLOSE_GRACE, sink.send(close(1011, "catch-up failed")))
                        .await;
                return "catch-up failed";
            }
            Err(CatchUp::ClientGone) => return "client closed during catch-up",
            Err(CatchUp::Slow) => {
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    sink.send(close(CLOSE_SLOW_CONSUMER, "slow consumer")),
                )
                .await;
                return "slow consumer during catch-up";
            }
        }
    }

    // The pump: live messages after `last` into the bounded queue; full or lagging = slow.
    let (tx, mut queue) = mpsc::channel::<Arc<LiveMessage>>(cfg.buffer.max(1));
    let slow = CancellationToken::new();
    let pump = {
        let slow = slow.clone();
        let mut rx = rx;
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(m) if m.at <= last => {}
                    Ok(m) => match tx.try_send(m) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            slow.cancel();
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        slow.cancel();
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    };
    let ended = live_loop(tenant, hub, cfg, &mut queue, sink, gone, &slow, last_seen).await;
    pump.abort();
    ended
}

/// The live phase: queue → socket, keepalive, idle timeout, slow-consumer close.
#[allow(clippy::too_many_arguments)]
async fn live_loop<S>(
    tenant: TenantId,
    hub: &LiveHub,
    cfg: &LiveConfig,
    queue: &mut mpsc::Receiver<Arc<LiveMessage>>,
    sink: &mut S,
    gone: &CancellationToken,
    slow: &CancellationToken,
    last_seen: &Arc<Mutex<Instant>>,
) -> Ended
where
    S: futures::Sink<Message> + Unpin,
{
    let mut ping = tokio::time::interval(cfg.ping);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let (code, reason, why): (u16, &'static str, Ended) = loop {
        tokio::select! {
            biased;
            () = hub.inner.stop.cancelled() => break (1001, "server shutting down", "server shutdown"),
            () = slow.cancelled() => break (CLOSE_SLOW_CONSUMER, "slow consumer", "slow consumer"),
            () = gone.cancelled() => return "client closed",
            _ = ping.tick() => {
                let idle = last_seen.lock().map(|t| t.elapsed()).unwrap_or_default();
                if idle > cfg.idle {
                    break (CLOSE_IDLE, "idle timeout", "idle timeout");
                }
                tokio::select! {
                    r = sink.send(Message::Ping(Default::default())) => {
                        if r.is_err() {
                            return "send failed";
                        }
                    }
                    () = slow.cancelled() => break (CLOSE_SLOW_CONSUMER, "slow consumer", "slow consumer"),
                    () = gone.cancelled() => return "client closed",
                }
            }
            m = queue.recv() => {
                let Some(m) = m else { return "queue closed" };
                tokio::select! {
                    r = sink.send(Message::Text(m.text.clone())) => {
                        if r.is_err() {
                            return "send failed";
                        }
                    }
                    () = slow.cancelled() => break (CLOSE_SLOW_CONSUMER, "slow consumer", "slow consumer"),
                    () = gone.cancelled() => return "client closed",
                }
            }
        }
    };
    if code == CLOSE_SLOW_CONSUMER {
        tracing::warn!(tenant_id = %tenant, "live client is a slow consumer; closing");
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(close(code, reason))).await;
    why
}

/// How a catch-up failed.
enum CatchUp {
    /// The position is outside the retention window (too old, unknown, or too many events).
    Gone,
    /// The log could not be read.
    Failed,
    /// The client went away.
    ClientGone,
    /// The client did not read.
    Slow,
}

/// Sends the tenant's messages after `after` from the log; returns the last position read.
async fn catch_up<S>(
    state: &AppState,
    cfg: &LiveConfig,
    tenant: TenantId,
    after: Checkpoint,
    sink: &mut S,
    gone: &CancellationToken,
) -> Result<Checkpoint, CatchUp>
where
    S: futures::Sink<Message> + Unpin,
{
    let store = state.store.with_pool(state.system.clone());
    let recorded = store.recorded_at(after).await.map_err(|e| {
        tracing::warn!(tenant_id = %tenant, error = %e, "live catch-up: position lookup failed");
        CatchUp::Failed
    })?;
    let window = chrono::Duration::from_std(cfg.retention).unwrap_or(chrono::Duration::MAX);
    match recorded {
        Some(t) if t >= state.clock.now() - window => {}
        _ => return Err(CatchUp::Gone),
    }
    let mut cp = after;
    let mut read = 0usize;
    loop {
        let events = store
            .read_tenant_after(tenant, STREAM, cp, READ_BATCH)
            .await
            .map_err(|e| {
                tracing::warn!(tenant_id = %tenant, error = %e, "live catch-up: read failed");
                CatchUp::Failed
            })?;
        if events.is_empty() {
            return Ok(cp);
        }
        read += events.len();
        if read > cfg.catchup_max {
            return Err(CatchUp::Gone);
        }
        for ev in &events {
            cp = ev.checkpoint();
            if let Some(m) = live_message(ev) {
                // A client that does not take one message within the idle timeout while
                // catching up is a slow consumer.
                tokio::select! {
                    r = sink.send(Message::Text(m.text)) => {
                        if r.is_err() {
                            return Err(CatchUp::ClientGone);
                        }
                    }
                    () = gone.cancelled() => return Err(CatchUp::ClientGone),
                    () = tokio::time::sleep(cfg.idle) => return Err(CatchUp::Slow),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_reject_garbage() {
        let cp = Checkpoint {
            transaction_id: 812,
            position: 77,
        };
        assert_eq!(parse_position(&format_position(cp)), Some(cp));
        for bad in ["", "1", "1:", ":2", "a:b", "1:-3", "1:2:3"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn unknown_query_parameters_are_named() {
        assert!(matches!(parse_query(Some("access_token=x")), Ok(None)));
        match parse_query(Some("after=oops")) {
            Err(ApiError::Validation(d)) => assert_eq!(d[0].field, "after"),
            other => panic!("{other:?}"),
        }
        match parse_query(Some("tenant_id=x")) {
            Err(ApiError::Validation(d)) => assert_eq!(d[0].field, "tenant_id"),
            other => panic!("{other:?}"),
        }
    }
}
