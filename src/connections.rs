//! The gateway's connections: who gets one, and for how long.
//!
//! Accepting never waits on a peer: each TCP connection is taken from the listener at once and
//! its TLS handshake runs in a task of its own. What peers can hold is bounded here:
//!
//! - **Pending handshakes**: at most [`ConnectionLimits::max_pending_handshakes`] in all and
//!   [`ConnectionLimits::max_pending_per_address`] per source address. Beyond either, the
//!   *oldest* pending handshake (of that address) is shed: silent connections displace each
//!   other, while a client whose handshake takes milliseconds completes long before its turn.
//! - **Open connections**: at most [`ConnectionLimits::max_connections`], pending ones included.
//!   At the cap the oldest pending handshake is shed, or else the new connection is closed at
//!   once, so the listener keeps draining its backlog and the process keeps file descriptors in
//!   reserve (see [`check_open_files`]).
//! - **Per member**: at most [`ConnectionLimits::max_connections_per_member`] established
//!   connections per member (from the verified client certificate), so one member cannot use up
//!   the connections everyone shares.
//! - **Idle**: a connection on which no byte moved either way for
//!   [`ConnectionLimits::idle_timeout`] is closed (longer than any RPC may take, so an RPC in
//!   progress is never cut).
//! - **Requests**: a connection must bring a complete request head within
//!   [`ConnectionLimits::head_timeout`] of its handshake, and, with no request in flight, is
//!   closed [`ConnectionLimits::idle_timeout`] after its last request ended — however its bytes
//!   arrive: a head trickled a byte at a time, over HTTP/1.1 or HTTP/2, holds nothing for
//!   long. The servers above say when a request starts and ends ([`Activity::start`]).
//!
//! ```text
//! listener ─accept─▶ Admission::admit (shed oldest) ─spawn─▶ handshake (timeout)
//!          ─▶ Admission::establish (member cap) ─▶ tonic ─ ... ─▶ drop: Admission::release
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::AbortHandle,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    schema::CodeLists,
    telemetry::{Refusal, Telemetry},
    tls::ServerTls,
};

/// File descriptors kept beyond the connections: the store's connections and files, the
/// configuration files a reload reads, the listener, logs.
pub const FD_RESERVE: u64 = 128;

/// What peers may hold; see the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Most TCP connections open at once, pending handshakes included.
    pub max_connections: usize,
    /// Most established connections of one member.
    pub max_connections_per_member: usize,
    /// Most TLS handshakes in progress at once.
    pub max_pending_handshakes: usize,
    /// Most TLS handshakes in progress from one source address.
    pub max_pending_per_address: usize,
    /// Longest TLS handshake.
    pub handshake_timeout: Duration,
    /// A connection on which nothing moved this long is closed; and one with no request in
    /// flight, this long after its last request ended.
    pub idle_timeout: Duration,
    /// Longest from the handshake to the first complete request head.
    pub head_timeout: Duration,
}

/// The stream of established connections that tonic serves.
pub type Incoming = ReceiverStream<Result<TlsStream<Tracked>, io::Error>>;

/// Where each connection's TLS configuration comes from: the one in force when it arrives.
pub type TlsSource = Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>;

/// The gateway's TLS for `listener` (gRPC, or the HTTP surfaces), as reloads replace it.
pub fn gateway_tls(tls: Arc<ServerTls>, listener: crate::tls::Listener) -> TlsSource {
    Arc::new(move || tls.for_listener(listener))
}

/// Accepts TCP connections on `listener` and completes their TLS handshakes concurrently, with
/// the configuration `tls` gives when each arrives, under `limits`. A refused or shed
/// connection is logged with its reason and the peer address; it never reaches the server.
/// `lists` tells the member a client certificate names; refusals are counted in `telemetry`.
/// The loop stops when the returned stream is dropped. The server over the stream says when
/// each request starts and ends ([`Tracked::activity`]): a connection with none in flight is
/// closed at its deadline.
pub fn incoming(
    listener: TcpListener,
    tls: TlsSource,
    lists: Arc<CodeLists>,
    limits: ConnectionLimits,
    telemetry: Option<Arc<Telemetry>>,
) -> Incoming {
    let (tx, rx) = mpsc::channel(64);
    let admission = Arc::new(Admission {
        limits,
        state: Mutex::new(State {
            telemetry: telemetry.clone(),
            ..State::default()
        }),
    });
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(id) = admission.admit(peer.ip()) else {
                continue; // dropping `tcp` closes it; `admit` reported it
            };
            let slot = Slot {
                admission: admission.clone(),
                id,
            };
            let (acceptor, tx, lists) = (TlsAcceptor::from(tls()), tx.clone(), lists.clone());
            let (admission_, telemetry) = (admission.clone(), telemetry.clone());
            let task = tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let tcp = Tracked::new(tcp, slot, &limits);
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let member = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|der| crate::identity::identify(der, &lists).ok())
                            .map_or_else(|| "-".to_owned(), |i| i.member.to_string());
                        match admission_.establish(id, &member) {
                            Ok(()) => {
                                let _ = tx.send(Ok(stream)).await;
                            }
                            Err(why) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
                                go_away(stream, &why).await
                            }
                            Err(why) => service_unavailable(stream, &why).await,
                        }
                    }
                    Ok(Err(e)) => {
                        if let Some(t) = &telemetry {
                            t.refused(Refusal::Handshake);
                        }
                        refused(peer, &crate::tls::handshake_error(&e));
                    }
                    Err(_) => {
                        if let Some(t) = &telemetry {
                            t.refused(Refusal::HandshakeTimeout);
                        }
                        refused(peer, "handshake timed out");
                    }
                }
            });
            admission.started(id, task.abort_handle());
        }
    });
    ReceiverStream::new(rx)
}

/// Closes an established connection that may not be served, telling its HTTP/2 client why: the
/// server's (empty) SETTINGS, then GOAWAY with ENHANCE_YOUR_CALM and the reason as debug data
/// (RFC 9113 §6.8). The connection is kept until the client closes it, for at most a second,
/// so that the GOAWAY is read before a request the client already sent meets a closed
/// connection. Meanwhile it counts as a pending handshake, the first to be shed.
async fn go_away(mut stream: TlsStream<Tracked>, why: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let debug = &why.as_bytes()[..why.len().min(256)];
    let mut frames = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0]; // SETTINGS, no parameters
    let len = 8 + debug.len();
    frames.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, 0x7, 0]);
    frames.extend_from_slice(&[0, 0, 0, 0]); // stream 0
    frames.extend_from_slice(&[0, 0, 0, 0]); // last stream id: none processed
    frames.extend_from_slice(&0xb_u32.to_be_bytes()); // ENHANCE_YOUR_CALM
    frames.extend_from_slice(debug);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&frames).await?;
        stream.flush().await?;
        let mut discard = [0u8; 1024];
        while stream.read(&mut discard).await? > 0 {}
        stream.shutdown().await
    })
    .await;
}

/// Closes an established HTTP/1.1 connection that may not be served, telling its client why
/// in its own protocol: `503 Service Unavailable` with `Retry-After` and the reason, then
/// `Connection: close`. Kept for at most a second, as [`go_away`] does.
async fn service_unavailable(mut stream: TlsStream<Tracked>, why: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = format!(
        "503 Service Unavailable: {}\n",
        why.chars().take(256).collect::<String>()
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; \
         charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.flush().await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 1024];
        while stream.read(&mut discard).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

fn refused(peer: SocketAddr, reason: &str) {
    tracing::warn!(target: "focalgate::handshake", peer = %peer, reason, "TLS handshake refused");
}

/// The bookkeeping behind the limits, shared by the accept loop and the connections.
struct Admission {
    limits: ConnectionLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Handshakes in progress, oldest first: the source address, and the task to abort when
    /// the handshake is shed (set once the task is spawned).
    pending: BTreeMap<u64, (IpAddr, Option<AbortHandle>)>,
    /// Handshakes in progress per source address.
    pending_per_address: HashMap<IpAddr, usize>,
    /// Established connections and their members.
    established: HashMap<u64, String>,
    /// Established connections per member.
    per_member: HashMap<String, usize>,
    /// What the limits turned away: a flood is reported once every few seconds with a count,
    /// not once per connection.
    shed: Throttled,
    closed_at_cap: Throttled,
    over_member_cap: Throttled,
    /// Where refusals and open connections are counted (none in unit tests).
    telemetry: Option<Arc<Telemetry>>,
}

impl State {
    fn count(&self, refusal: Refusal) {
        if let Some(t) = &self.telemetry {
            t.refused(refusal);
        }
    }
}

/// A count of like events since they were last reported, and when that was.
#[derive(Default)]
struct Throttled {
    count: u64,
    reported: Option<Instant>,
}

impl Throttled {
    /// Counts one event; the count to report, when the last report is 10 s old (or none).
    fn hit(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .reported
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(10))
        {
            return None;
        }
        self.reported = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

impl State {
    /// Sheds one pending handshake: the oldest, or the oldest from `from`.
    fn shed_oldest(&mut self, from: Option<IpAddr>) {
        let oldest = self
            .pending
            .iter()
            .find(|(_, (ip, _))| from.is_none_or(|f| f == *ip))
            .map(|(&id, _)| id);
        if let Some(id) = oldest
            && let Some((ip, task)) = self.remove_pending(id)
        {
            if let Some(task) = task {
                task.abort(); // drops the task, and with it the connection
            }
            self.count(Refusal::Shed);
            if let Some(shed) = self.shed.hit() {
                tracing::warn!(
                    target: "focalgate::handshake",
                    shed,
                    last_peer = %ip,
                    "pending TLS handshakes shed, oldest first (too many in progress, in all or from one address)"
                );
            }
        }
    }

    fn remove_pending(&mut self, id: u64) -> Option<(IpAddr, Option<AbortHandle>)> {
        let (ip, task) = self.pending.remove(&id)?;
        if let Some(n) = self.pending_per_address.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.pending_per_address.remove(&ip);
            }
        }
        Some((ip, task))
    }

    fn open(&self) -> usize {
        self.pending.len() + self.established.len()
    }
}

impl Admission {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for a connection from `ip` and registers its handshake; `None` when every
    /// open connection is established and the cap is reached.
    fn admit(&self, ip: IpAddr) -> Option<u64> {
        let limits = &self.limits;
        let mut s = self.lock();
        if s.open() >= limits.max_connections {
            if s.pending.is_empty() {
                s.count(Refusal::TotalCap);
                if let Some(closed) = s.closed_at_cap.hit() {
                    tracing::warn!(
                        target: "focalgate::handshake",
                        closed,
                        last_peer = %ip,
                        max_connections = limits.max_connections,
                        "connections closed at once: every connection is established (limits.max_connections)"
                    );
                }
                return None;
            }
            s.shed_oldest(None);
        }
        if s.pending.len() >= limits.max_pending_handshakes {
            s.shed_oldest(None);
        }
        if s.pending_per_address.get(&ip).copied().unwrap_or(0) >= limits.max_pending_per_address {
            s.shed_oldest(Some(ip));
        }
        let id = s.next_id;
        s.next_id += 1;
        s.pending.insert(id, (ip, None));
        *s.pending_per_address.entry(ip).or_default() += 1;
        Some(id)
    }

    /// Records the task doing handshake `id`, so that it can be shed.
    fn started(&self, id: u64, task: AbortHandle) {
        // Absent when done already, or shed.
        if let Some(entry) = self.lock().pending.get_mut(&id) {
            entry.1 = Some(task);
        }
    }

    /// Handshake `id` is done for `member`: established, unless it was shed meanwhile or the
    /// member has all the connections it may have.
    /// A refused connection stays pending (counted, and shed first if others arrive) until it
    /// is closed.
    fn establish(&self, id: u64, member: &str) -> Result<(), String> {
        let mut s = self.lock();
        if !s.pending.contains_key(&id) {
            return Err("shed while its handshake was in progress".into());
        }
        let held = s.per_member.get(member).copied().unwrap_or(0);
        if held >= self.limits.max_connections_per_member {
            s.count(Refusal::MemberCap);
            if let Some(refused) = s.over_member_cap.hit() {
                tracing::warn!(
                    target: "focalgate::handshake",
                    refused,
                    last_member = member,
                    max = self.limits.max_connections_per_member,
                    "connections refused after the handshake: the member holds the most it may (limits.max_connections_per_member)"
                );
            }
            return Err(format!(
                "member {member} already holds {held} connections, the most one member may (limits.max_connections_per_member)"
            ));
        }
        s.remove_pending(id);
        s.established.insert(id, member.to_owned());
        *s.per_member.entry(member.to_owned()).or_default() += 1;
        if let Some(t) = &s.telemetry {
            t.connections(1);
        }
        Ok(())
    }

    /// Connection `id` is closed.
    fn release(&self, id: u64) {
        let mut s = self.lock();
        if s.remove_pending(id).is_some() {
            return;
        }
        let Some(member) = s.established.remove(&id) else {
            return;
        };
        if let Some(t) = &s.telemetry {
            t.connections(-1);
        }
        if let Some(n) = s.per_member.get_mut(&member) {
            *n -= 1;
            if *n == 0 {
                s.per_member.remove(&member);
            }
        }
    }
}

/// A connection's place in the [`Admission`] books, given back when the connection is dropped.
struct Slot {
    admission: Arc<Admission>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission.release(self.id);
    }
}

/// Whether a connection has requests in flight, as the server over it says: kept beside the
/// connection ([`Tracked`]) and found by the server in each request's connection info.
#[derive(Debug)]
pub struct Activity {
    /// Requests in flight.
    in_flight: std::sync::atomic::AtomicUsize,
    /// When the connection last had none (its accept, or its last request's end), and
    /// whether it has had any.
    waiting: Mutex<(tokio::time::Instant, bool)>,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            in_flight: Default::default(),
            waiting: Mutex::new((tokio::time::Instant::now(), false)),
        })
    }

    /// A request's head has arrived: it is in flight until the returned guard is dropped
    /// (once its response has been sent, or abandoned).
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection is to be closed, given its limits and when a byte last moved:
    /// once nothing moved for the idle timeout, and, with no request in flight, once the
    /// head timeout (no request yet) or the idle timeout (since the last one ended) is past.
    fn deadline(
        &self,
        limits: (Duration, Duration),
        last_io: tokio::time::Instant,
    ) -> tokio::time::Instant {
        let (head, idle) = limits;
        if self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            return last_io + idle;
        }
        let (since, served) = *self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        (last_io + idle).min(since + if served { idle } else { head })
    }
}

/// A request in flight on a connection ([`Activity::start`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        let mut waiting = a.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if a.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            *waiting = (tokio::time::Instant::now(), true);
        }
    }
}

/// A TCP connection that closes itself when it holds the server up: a read that would wait
/// past its deadline ends the stream instead, and the server drops it. The deadline is the
/// idle timeout after the last byte moved; and, with no request in flight, the head timeout
/// after accept (no request yet) or the idle timeout after the last request ended, which
/// bytes arriving do not put off.
pub struct Tracked {
    tcp: TcpStream,
    limits: (Duration, Duration),
    last_io: tokio::time::Instant,
    deadline: Pin<Box<tokio::time::Sleep>>,
    activity: Arc<Activity>,
    _slot: Slot,
}

impl Tracked {
    /// A connection accepted now: its first request head is due within the handshake timeout
    /// and the head timeout.
    fn new(tcp: TcpStream, slot: Slot, limits: &ConnectionLimits) -> Self {
        let limits = (
            limits.handshake_timeout + limits.head_timeout,
            limits.idle_timeout,
        );
        let now = tokio::time::Instant::now();
        Self {
            tcp,
            limits,
            last_io: now,
            deadline: Box::pin(tokio::time::sleep_until(now + limits.1)),
            activity: Activity::new(),
            _slot: slot,
        }
    }

    /// What the server over this connection tells of its requests.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp.peer_addr().ok()
    }

    fn touch(&mut self) {
        self.last_io = tokio::time::Instant::now();
    }

    /// Whether the deadline has passed; if not, the timer is set to it.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let deadline = self.activity.deadline(self.limits, self.last_io);
            if self.deadline.deadline() != deadline {
                self.deadline.as_mut().reset(deadline);
            }
            match self.deadline.as_mut().poll(cx) {
                Poll::Pending => return false,
                Poll::Ready(()) => {
                    if self.activity.deadline(self.limits, self.last_io)
                        <= tokio::time::Instant::now()
                    {
                        return true;
                    }
                }
            }
        }
    }
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle, or its request head too slow",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.tcp).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// What tonic puts in each request's extensions of a [`Tracked`] connection (inside its
/// `TlsConnectInfo`, beside the peer certificates): the TCP addresses, and the connection's
/// [`Activity`].
#[derive(Clone, Debug)]
pub struct ConnectInfo {
    /// The TCP addresses.
    pub tcp: tonic::transport::server::TcpConnectInfo,
    /// The connection's requests.
    pub activity: Arc<Activity>,
}

/// The connection info of a TLS connection over a [`Tracked`] one, as tonic gives it.
pub type TlsInfo = tonic::transport::server::TlsConnectInfo<ConnectInfo>;

/// The leaf certificate of the peer of the request whose extensions are `extensions`.
pub fn peer_leaf(extensions: &http::Extensions) -> Option<Vec<u8>> {
    extensions
        .get::<TlsInfo>()
        .and_then(|i| i.peer_certs())
        .and_then(|certs| certs.first().map(|c| c.as_ref().to_vec()))
}

impl tonic::transport::server::Connected for Tracked {
    type ConnectInfo = ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnectInfo {
            tcp: tonic::transport::server::TcpConnectInfo {
                local_addr: self.tcp.local_addr().ok(),
                remote_addr: self.tcp.peer_addr().ok(),
            },
            activity: self.activity.clone(),
        }
    }
}

/// Raises the open-file limit as far as the system allows towards what `limits` need (every
/// connection is a file descriptor, and [`FD_RESERVE`] more), and warns when it stays below.
/// Returns the limit in force.
pub fn check_open_files(limits: &ConnectionLimits) -> Option<u64> {
    let needed = limits.max_connections as u64 + FD_RESERVE;
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit < needed => {
            tracing::warn!(
                limit,
                needed,
                max_connections = limits.max_connections,
                "the open-file limit (ulimit -n) is below what limits.max_connections and the gateway's own files need: \
                 raise it (systemd LimitNOFILE=) or lower limits.max_connections, or a flood of connections can \
                 exhaust file descriptors before the connection cap applies"
            );
            Some(limit)
        }
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_connections: usize, pending: usize, per_address: usize) -> Admission {
        Admission {
            limits: ConnectionLimits {
                max_connections,
                max_connections_per_member: 2,
                max_pending_handshakes: pending,
                max_pending_per_address: per_address,
                handshake_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(1),
                head_timeout: Duration::from_secs(1),
            },
            state: Mutex::new(State::default()),
        }
    }

    #[test]
    fn the_oldest_pending_handshake_is_shed_in_all_and_per_address() {
        let a = admission(100, 3, 2);
        let (x, y): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let ids: Vec<u64> = [x, x, y].iter().map(|ip| a.admit(*ip).unwrap()).collect();
        // A third from x sheds x's oldest (ids[0]).
        let third = a.admit(x).unwrap();
        assert!(!a.lock().pending.contains_key(&ids[0]));
        // The total is now 3: a new one sheds the oldest of all (ids[1]).
        a.admit(y).unwrap();
        let pending: Vec<u64> = a.lock().pending.keys().copied().collect();
        assert_eq!(pending, vec![ids[2], third, third + 1]);
        assert_eq!(a.lock().pending_per_address[&y], 2);
        assert!(
            a.establish(ids[0], "KAZ:nfp").is_err(),
            "a shed handshake stays shed"
        );
    }

    #[test]
    fn a_flood_is_reported_once_with_its_count() {
        let mut t = Throttled::default();
        assert_eq!(t.hit(), Some(1));
        assert!((0..999).all(|_| t.hit().is_none()));
        t.reported = Some(Instant::now() - Duration::from_secs(11));
        assert_eq!(t.hit(), Some(1000));
    }

    #[test]
    fn members_and_the_total_are_capped_and_closing_frees_a_place() {
        let a = admission(3, 10, 10);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ids: Vec<u64> = (0..3).map(|_| a.admit(ip).unwrap()).collect();
        a.establish(ids[0], "KAZ:nfp").unwrap();
        a.establish(ids[1], "KAZ:nfp").unwrap();
        let third = a.establish(ids[2], "KAZ:nfp").unwrap_err();
        assert!(third.contains("already holds 2 connections"), "{third}");
        assert!(
            a.lock().pending.contains_key(&ids[2]),
            "counted until closed"
        );
        a.release(ids[2]);
        // Two established: a third admission is fine, a fourth sheds the pending one.
        let pending = a.admit(ip).unwrap();
        let next = a.admit(ip).unwrap();
        assert!(!a.lock().pending.contains_key(&pending) && a.lock().pending.contains_key(&next));
        a.establish(next, "UZB:nfp").unwrap();
        assert_eq!(a.admit(ip), None, "all established: the new one is closed");
        a.release(ids[0]);
        assert!(a.admit(ip).is_some());
        assert_eq!(a.lock().per_member["KAZ:nfp"], 1);
    }
}
