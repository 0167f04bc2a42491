//! The load generator: hyper's HTTP/1.1 client connection over plain tokio TCP streams, one
//! keep-alive connection per simulated client, every request timed on its own.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::server::BoxError;

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// The part of a phase whose answers count: a response is counted when it completes inside.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

impl Window {
    /// Starts `warmup` from now and lasts `duration`.
    pub(crate) fn after(warmup: Duration, duration: Duration) -> Self {
        let start = Instant::now() + warmup;
        Self {
            start,
            end: start + duration,
        }
    }

    fn contains(&self, at: Instant) -> bool {
        self.start <= at && at <= self.end
    }
}

/// Opens one keep-alive HTTP/1.1 connection to `addr`, from `source` when given (any address
/// of 127.0.0.0/8 is the loopback interface on Linux, so each flooding client can be its own
/// client address for the login limiter).
pub(crate) async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<Sender, BoxError> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; either is seen by the sender.
        let _ = connection.await;
    });
    Ok(sender)
}

pub(crate) fn request(
    method: Method,
    path: &str,
    auth: Option<&HeaderValue>,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().unwrap_or_default();
    let headers = request.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("127.0.0.1"));
    if let Some(value) = auth {
        headers.insert(AUTHORIZATION, value.clone());
    }
    request
}

/// Sends one request and reads the whole answer: status, `Retry-After` and when it completed.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Option<HeaderValue>, Instant), BoxError> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let retry_after = response.headers().get(RETRY_AFTER).cloned();
    response.into_body().collect().await?;
    Ok((status, retry_after, Instant::now()))
}

/// Bearer header values, one per token.
pub(crate) fn bearer_values(tokens: &[String]) -> Result<Arc<Vec<HeaderValue>>, BoxError> {
    let values = tokens
        .iter()
        .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(values))
}

/// Answers of a closed-loop run.
#[derive(Debug, Default)]
pub(crate) struct Load {
    /// 200 answers completed inside the window.
    pub(crate) ok: u64,
    /// Other answers or failed exchanges inside the window (a valid run has none).
    pub(crate) errors: u64,
    /// Latency of each counted 200, in nanoseconds: request handed to the connection to the
    /// last byte of the body read.
    pub(crate) latencies: Vec<u64>,
}

/// `connections` clients, each on its own connection, each sending its next request as soon
/// as the previous answer is read (a closed loop), until `window.end`. Request `i` of
/// connection `k` carries token `(k + i * connections) % tokens.len()`, so the pool is cycled.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    tokens: Option<Arc<Vec<HeaderValue>>>,
    connections: usize,
    window: Window,
) -> Result<Load, BoxError> {
    let mut senders = Vec::with_capacity(connections);
    for _ in 0..connections {
        senders.push(connect(addr, None).await?);
    }
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(k, mut sender)| {
            let tokens = tokens.clone();
            tokio::spawn(async move {
                let mut load = Load::default();
                let mut next = k;
                while Instant::now() < window.end {
                    let auth = tokens.as_ref().map(|t| &t[next % t.len()]);
                    next += connections;
                    let request = request(Method::GET, "/hello", auth, Bytes::new());
                    let sent = Instant::now();
                    match exchange(&mut sender, request).await {
                        Ok((status, _, done)) if window.contains(done) => {
                            if status == StatusCode::OK {
                                load.ok += 1;
                                load.latencies.push(nanos(done - sent));
                            } else {
                                load.errors += 1;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            load.errors += 1;
                            // The connection is gone: a fresh one, as a client would.
                            match connect(addr, None).await {
                                Ok(fresh) => sender = fresh,
                                Err(_) => break,
                            }
                        }
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for task in tasks {
        let load = task.await?;
        total.ok += load.ok;
        total.errors += load.errors;
        total.latencies.extend(load.latencies);
    }
    Ok(total)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Answers of a fixed-rate probe.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    /// Latency of each answer completed inside the window, in nanoseconds (see [`probe`]).
    pub(crate) latencies: Vec<u64>,
    /// Answers other than 200, and failed exchanges, inside the window.
    pub(crate) failures: u64,
    /// Requests sent later than scheduled because the previous answer was still awaited.
    pub(crate) behind: u64,
}

impl Probe {
    pub(crate) fn merge(&mut self, other: Self) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        self.behind += other.behind;
    }
}

/// One connection sending `GET path` every `interval` from now until `window.end`.
///
/// A request's latency runs from when it was due if the previous answer came after that (the
/// server made it wait: no coordinated omission), else from when it was sent (so the timer's
/// own lateness is not blamed on the server).
pub(crate) async fn probe(
    addr: SocketAddr,
    path: &'static str,
    auth: Option<HeaderValue>,
    interval: Duration,
    window: Window,
) -> Result<Probe, BoxError> {
    let mut sender = connect(addr, None).await?;
    let mut result = Probe::default();
    let mut due = Instant::now();
    let mut previous_done = due;
    while due < window.end {
        tokio::time::sleep_until(due.into()).await;
        let sent = Instant::now();
        let from = if previous_done > due {
            result.behind += 1;
            due
        } else {
            sent
        };
        let request = request(Method::GET, path, auth.as_ref(), Bytes::new());
        match exchange(&mut sender, request).await {
            Ok((status, _, done)) => {
                previous_done = done;
                if window.contains(done) {
                    if status == StatusCode::OK {
                        result.latencies.push(nanos(done - from));
                    } else {
                        result.failures += 1;
                    }
                }
            }
            Err(_) => {
                result.failures += 1;
                previous_done = Instant::now();
                sender = connect(addr, None).await?;
            }
        }
        due += interval;
    }
    Ok(result)
}

/// Logs in once and returns the access token (for the protected probe).
pub(crate) async fn login_once(addr: SocketAddr, username: &str) -> Result<String, BoxError> {
    let mut sender = connect(addr, None).await?;
    let request = login_request(username);
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!("setup login: {status} {}", String::from_utf8_lossy(&body)).into());
    }
    let value: serde_json::Value = serde_json::from_slice(&body)?;
    value["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "setup login: no access_token".into())
}

fn login_request(username: &str) -> Request<Full<Bytes>> {
    let body = format!(
        "grant_type=password&username={username}&password={}",
        crate::server::PASSWORD.replace(' ', "+")
    );
    let mut request = request(Method::POST, "/auth/token", None, Bytes::from(body));
    request.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    request
}

/// What the flooding clients saw inside the window.
#[derive(Debug, Default)]
pub(crate) struct Flood {
    /// 200 answers: successful logins.
    pub(crate) ok: u64,
    /// Their latencies, in nanoseconds.
    pub(crate) ok_latencies: Vec<u64>,
    /// 503 answers.
    pub(crate) unavailable: u64,
    /// 503 answers without a `Retry-After` header of whole seconds.
    pub(crate) unavailable_without_retry_after: u64,
    /// 429 answers (the login limiter).
    pub(crate) limited: u64,
    /// Any other status, by code.
    pub(crate) other: BTreeMap<u16, u64>,
    /// Exchanges that failed (connection errors).
    pub(crate) errors: u64,
}

impl Flood {
    pub(crate) fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.ok_latencies.extend(other.ok_latencies);
        self.unavailable += other.unavailable;
        self.unavailable_without_retry_after += other.unavailable_without_retry_after;
        self.limited += other.limited;
        for (status, count) in other.other {
            *self.other.entry(status).or_default() += count;
        }
        self.errors += other.errors;
    }
}

/// One flooding client: logs in as `username` from `source`, again and again, until
/// `window.end`. After a 503 or 429 it waits what `Retry-After` says (capped at the end of
/// the window) unless `ignore_retry_after`, as a well-behaved client does.
async fn login_loop(
    addr: SocketAddr,
    source: Option<IpAddr>,
    username: String,
    window: Window,
    ignore_retry_after: bool,
) -> Result<Flood, BoxError> {
    let mut sender = connect(addr, source).await?;
    let mut flood = Flood::default();
    while Instant::now() < window.end {
        let sent = Instant::now();
        let (status, retry_after, done) =
            match exchange(&mut sender, login_request(&username)).await {
                Ok(answer) => answer,
                Err(_) => {
                    if window.contains(Instant::now()) {
                        flood.errors += 1;
                    }
                    sender = connect(addr, source).await?;
                    continue;
                }
            };
        let retry_after =
            retry_after.and_then(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()));
        let counted = window.contains(done);
        match status {
            StatusCode::OK if counted => {
                flood.ok += 1;
                flood.ok_latencies.push(nanos(done - sent));
            }
            StatusCode::SERVICE_UNAVAILABLE if counted => {
                flood.unavailable += 1;
                if retry_after.is_none() {
                    flood.unavailable_without_retry_after += 1;
                }
            }
            StatusCode::TOO_MANY_REQUESTS if counted => flood.limited += 1,
            other if counted => *flood.other.entry(other.as_u16()).or_default() += 1,
            _ => {}
        }
        let told_to_wait = matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        );
        if told_to_wait && !ignore_retry_after {
            let wait = Duration::from_secs(retry_after.unwrap_or(1));
            tokio::time::sleep_until((Instant::now() + wait).min(window.end).into()).await;
        }
    }
    Ok(flood)
}

/// `users.len()` clients logging in concurrently, client `i` as `users[i]` from 127.0.0.`i+2`
/// when `distinct_sources` (each a separate client address, as separate people would be).
pub(crate) async fn login_flood(
    addr: SocketAddr,
    users: &[String],
    distinct_sources: bool,
    window: Window,
    ignore_retry_after: bool,
) -> Result<Flood, BoxError> {
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let source = distinct_sources.then(|| source_address(i));
            tokio::spawn(login_loop(
                addr,
                source,
                user.clone(),
                window,
                ignore_retry_after,
            ))
        })
        .collect();
    let mut total = Flood::default();
    for task in tasks {
        total.merge(task.await??);
    }
    Ok(total)
}

/// 127.0.0.2 upwards: loopback addresses other than the server's.
pub(crate) fn source_address(i: usize) -> IpAddr {
    let i = u32::try_from(i).unwrap_or(0) + 2;
    IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 | (i & 0x00ff_ffff)))
}

/// Whether this machine lets a socket bind to 127.0.0.2 (Linux does).
pub(crate) async fn distinct_sources_work(addr: SocketAddr) -> bool {
    connect(addr, Some(source_address(0))).await.is_ok()
}

/// `GET path` once, the body as JSON.
pub(crate) async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, BoxError> {
    let mut sender = connect(addr, None).await?;
    sender.ready().await?;
    let response = sender
        .send_request(request(Method::GET, path, None, Bytes::new()))
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

/// What the one well-behaved user of the fairness scenario saw.
#[derive(Debug, Default)]
pub(crate) struct Victim {
    /// Logins sent.
    pub(crate) attempts: u64,
    /// 200 answers.
    pub(crate) ok: u64,
    /// Latencies of every answered login (any status), in nanoseconds.
    pub(crate) latencies: Vec<u64>,
    /// Answers other than 200, by status (0: the exchange failed).
    pub(crate) refused: BTreeMap<u16, u64>,
}

/// One user logging in as `username` from `source` once a second during `window` (the next
/// login leaves a second after the previous one left, or at once when that one took longer).
pub(crate) async fn victim(
    addr: SocketAddr,
    source: Option<IpAddr>,
    username: String,
    window: Window,
) -> Result<Victim, BoxError> {
    let mut sender = connect(addr, source).await?;
    let mut victim = Victim::default();
    tokio::time::sleep_until(window.start.into()).await;
    let mut next = window.start;
    while next < window.end {
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        next = sent + Duration::from_secs(1);
        victim.attempts += 1;
        match exchange(&mut sender, login_request(&username)).await {
            Ok((status, _, done)) => {
                victim.latencies.push(nanos(done - sent));
                if status == StatusCode::OK {
                    victim.ok += 1;
                } else {
                    *victim.refused.entry(status.as_u16()).or_default() += 1;
                }
            }
            Err(_) => {
                *victim.refused.entry(0).or_default() += 1;
                sender = connect(addr, source).await?;
            }
        }
    }
    Ok(victim)
}
