//! The example server's edge (included by `server.rs` with `#[path]`, so not an example of its
//! own): the headers every answer carries, the request timeout and body cap ([`harden`]), and how
//! connections are accepted, timed and capped ([`serve_with`]).
//!
//! Connections:
//!
//! - A client has [`ConnectionLimits`]' header-read timeout to send a complete request head,
//!   counted from the connection's opening and, over HTTP/1.1, from the end of the previous
//!   answer; then the connection is closed (hyper's `header_read_timeout`, and for a connection
//!   that has not sent its first head, the idle watch below).
//! - A connection with no request in flight is idle; after the idle timeout it is closed. A
//!   request is in flight from its complete head until its answer's head is ready, so a client
//!   that stops reading its answer is idle too. HTTP/2 connections are also pinged after that
//!   long without a frame and closed when the ping goes unanswered for as long.
//! - Open connections are capped in total (below the open-file limit, which `ConnectionLimits`
//!   raises to its hard limit at start) and per client (an IPv4 address, or an IPv6 `/64`: one
//!   subscriber's usual allocation); peers in trusted-proxy networks count only towards the
//!   total. A connection past a cap is closed as soon as it is accepted, so the ones already
//!   open keep their service and a refused client learns at once.
//! - Shutdown stops accepting, lets requests in flight finish and closes idle connections
//!   (hyper-util's `GracefulShutdown`); the timeouts above bound how long that takes.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::error::Error;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa_swagger_ui::SwaggerUi;

type BoxError = Box<dyn Error + Send + Sync>;

/// How long a client may take to send a request head, unless configured.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open with no request in flight, unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may take from its head to its answer, unless configured.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Open connections per client, unless configured.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// The cap on open connections, unless configured or the open-file limit is lower.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Open files kept for the process itself (listeners, the Redis connection, logs) when the
/// connection cap is checked against the open-file limit.
pub const RESERVED_FILES: u64 = 128;
/// The largest request body any route may receive; larger ones are answered 413 before
/// routing. The routes' own caps are lower (8 KiB for the login router, 4 KiB for `/items`).
pub const MAX_REQUEST_BODY_BYTES: usize = 16 * 1024;

/// The content security policy of every answer that sets none itself: the API serves data, not
/// pages, so a browser that renders an answer loads nothing for it and frames it nowhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// `router` with the edge's layers around every route and the fallback: the security headers on
/// every answer (`X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
/// `Referrer-Policy: no-referrer`, and unless the answer sets its own, a content security
/// policy and `Cache-Control: no-store`; the JWKS sets `public, max-age=300`), 413 for bodies
/// over [`MAX_REQUEST_BODY_BYTES`], and 408 for requests that take longer than
/// `request_timeout` from head to answer, reading the body included.
pub fn harden(router: Router, request_timeout: Duration) -> Router {
    let value = HeaderValue::from_static;
    router.layer(
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                value("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_FRAME_OPTIONS,
                value("DENY"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                value("no-referrer"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CONTENT_SECURITY_POLICY,
                value(CONTENT_SECURITY_POLICY),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                value("no-store"),
            ))
            .layer(RequestBodyLimitLayer::new(MAX_REQUEST_BODY_BYTES))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                request_timeout,
            )),
    )
}

/// The content security policy of Swagger UI's pages: its scripts, styles and images from
/// this origin only (styles also inline, as React sets them; icons as `data:` images), calls
/// to this origin only, and no framing.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /openapi.json` (the document) and Swagger UI at `/docs`, from assets compiled into the
/// binary (nothing is fetched at build or run time). Its "Authorize" dialog logs in with the
/// password flow; authorisation is not kept across page loads.
pub fn api_docs(document: utoipa::openapi::OpenApi) -> Router {
    let ui = SwaggerUi::new("/docs")
        .url("/openapi.json", document)
        .config(
            utoipa_swagger_ui::Config::from("/openapi.json")
                .persist_authorization(false)
                .try_it_out_enabled(true),
        );
    Router::from(ui).layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
    ))
}

/// How long a browser may reuse a preflight's answer.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// `origin` checked as one entry of `CORS_ALLOWED_ORIGINS`: exactly what a browser sends in
/// `Origin`, `https://host[:port]` (`http://` only to a loopback host), lower-case, no path,
/// no default port, no wildcard.
///
/// # Errors
///
/// A message saying what is wrong with `origin`.
pub fn cors_origin(origin: &str) -> Result<String, String> {
    let (scheme, authority) = origin
        .split_once("://")
        .ok_or_else(|| format!("{origin:?} is not scheme://host[:port]"))?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !authority.ends_with(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host_ok = !bare.is_empty()
        && (bare.parse::<Ipv6Addr>().is_ok() && host.starts_with('[')
            || bare
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
    if !host_ok {
        return Err(format!(
            "{origin:?}: the host must be a lower-case name or an address, without path,              wildcard or credentials"
        ));
    }
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let default_port = match scheme {
        "https" => "443",
        "http" if loopback => "80",
        "http" => {
            return Err(format!(
                "{origin:?}: plain http only to a loopback host; use https"
            ));
        }
        _ => return Err(format!("{origin:?}: the scheme must be https or http")),
    };
    match port {
        None => {}
        Some(port) if port == default_port => {
            return Err(format!(
                "{origin:?}: browsers leave the default port out; so must the setting"
            ));
        }
        Some(port) if port.parse::<u16>().is_ok_and(|p| p > 0) && !port.starts_with('0') => {}
        Some(_) => return Err(format!("{origin:?}: the port must be a number")),
    }
    Ok(origin.to_owned())
}

/// CORS for browser apps served from `origins` (checked by [`cors_origin`]): exactly those
/// origins, the API's methods, `Authorization` and `Content-Type` request headers, the
/// challenge, `Retry-After` and pagination's `Link` readable by the page, no credentials mode
/// (tokens travel in the `Authorization` header, never in cookies), preflights cached for
/// [`CORS_MAX_AGE`]. Other origins get no CORS headers, so their browsers refuse the answer.
pub fn cors(origins: &[String]) -> CorsLayer {
    let origins = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::LINK])
        .max_age(CORS_MAX_AGE)
}

/// How [`serve_with`] times and caps connections (see the module docs).
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max: usize,
    max_per_client: usize,
    exempt: Vec<Network>,
}

impl ConnectionLimits {
    /// The limits, with the soft open-file limit raised to the hard limit where the system
    /// allows; `max` defaults to [`DEFAULT_MAX_CONNECTIONS`] or what the open-file limit leaves,
    /// whichever is lower. Peers in `exempt` (addresses or CIDR networks: trusted proxies, whose
    /// connections carry many clients) count only towards `max`.
    ///
    /// # Errors
    ///
    /// When `max` needs more open files than the limit allows, or an `exempt` entry is not an
    /// address or a network.
    pub fn new(
        header_read_timeout: Duration,
        idle_timeout: Duration,
        max: Option<usize>,
        max_per_client: usize,
        exempt: &[String],
    ) -> Result<Self, BoxError> {
        let exempt = exempt
            .iter()
            .map(|entry| {
                Network::parse(entry).ok_or_else(|| {
                    format!("AUTH_TRUSTED_PROXIES: {entry:?} is not an address or a network")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let files = raise_open_file_limit();
        let room = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        let max = match max {
            Some(max) if max > room => {
                return Err(format!(
                    "HTTP_MAX_CONNECTIONS={max} needs more open files than the limit ({files}, \
                     {RESERVED_FILES} of them kept for the server itself) allows: lower it, or \
                     raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE)"
                )
                .into());
            }
            Some(max) => max,
            None if room == 0 => {
                return Err(format!(
                    "the open-file limit ({files}) leaves no room for connections"
                )
                .into());
            }
            None => room.min(DEFAULT_MAX_CONNECTIONS),
        };
        Ok(Self {
            header_read_timeout,
            idle_timeout,
            max,
            max_per_client,
            exempt,
        })
    }

    /// The cap on open connections.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Raises the soft limit on open files to the hard limit, where the system allows, and returns
/// the soft limit in force.
fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-file limit; assuming 1024");
            1024
        }
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes, then finishes the
/// requests in flight (see the module docs). Each request carries its peer's address
/// (`ConnectInfo<SocketAddr>`), which the login limiter reads.
///
/// # Errors
///
/// None at present: a failed accept is logged and retried rather than returned.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.idle_timeout);
    let builder = Arc::new(builder);
    let (header_read, idle) = (limits.header_read_timeout, limits.idle_timeout);
    let admission = Arc::new(Admission {
        limits,
        open: Mutex::default(),
    });
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Past a cap, the stream is dropped here: closed as soon as it was accepted.
        let Some(slot) = admission.admit(peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = hyper::service::service_fn({
            let (router, activity) = (router.clone(), Arc::clone(&activity));
            move |mut request: Request<Incoming>| {
                let busy = activity.begin();
                request.extensions_mut().insert(ConnectInfo(peer));
                let answer = router.clone().oneshot(request);
                async move {
                    let answer = answer.await;
                    drop(busy);
                    answer
                }
            }
        });
        let (builder, watcher) = (Arc::clone(&builder), graceful.watcher());
        tokio::spawn(async move {
            let _slot = slot;
            let connection = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                },
                () = activity.idle(header_read.min(idle), idle) => {
                    tracing::debug!(%peer, "idle connection closed");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// After a failed `accept`: an error of that one connection (reset before it was accepted) is
/// nothing to wait for; any other (out of file descriptors) pauses accepting briefly instead of
/// spinning on it.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::error!(%error, "accept failed; pausing for 100 ms");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The connection caps.

/// The open connections against the caps.
struct Admission {
    limits: ConnectionLimits,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    /// The total cap was reached and logged; reset once the count is down to 90 % of the cap,
    /// so that a server held at its cap logs it once, not once per connection.
    full: bool,
}

/// An admitted connection's place in the counts, given back when it is dropped.
struct Slot {
    admission: Arc<Admission>,
    /// The client it counts against, unless exempt.
    client: Option<IpAddr>,
}

impl Admission {
    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `peer`, or `None` (logged) past a cap.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let exempt = self.limits.exempt.iter().any(|n| n.contains(peer));
        let client = (!exempt).then(|| client(peer));
        let mut open = self.open();
        if open.total >= self.limits.max {
            if !open.full {
                open.full = true;
                tracing::warn!(
                    max = self.limits.max,
                    "connection cap reached: refusing new connections until one closes"
                );
            }
            return None;
        }
        if let Some(client) = client {
            let count = open.per_client.entry(client).or_default();
            if *count >= self.limits.max_per_client {
                tracing::debug!(%peer, "per-client connection cap reached: connection refused");
                return None;
            }
            *count += 1;
        }
        open.total += 1;
        Some(Slot {
            admission: Arc::clone(self),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open();
        open.total -= 1;
        if open.total * 10 <= self.admission.limits.max * 9 {
            open.full = false;
        }
        if let Some(client) = self.client
            && let Entry::Occupied(mut count) = open.per_client.entry(client)
        {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }
}

/// The client a connection from `peer` counts against: an IPv4 address, or an IPv6 `/64`.
fn client(peer: IpAddr) -> IpAddr {
    match canonical(peer) {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 addresses (as dual-stack sockets report IPv4 peers) are their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address or a CIDR network (`10.0.0.0/8`, `::1`).
#[derive(Clone, Copy, Debug)]
struct Network {
    addr: IpAddr,
    prefix: u32,
}

impl Network {
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr = canonical(addr.parse().ok()?);
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse().ok().filter(|&p| p <= bits)?
            }
            Some(_) => return None,
            None => bits,
        };
        Some(Self { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The idle watch.

/// Whether a connection has a request in flight, and since when it has had none.
struct Activity {
    state: Mutex<ActivityState>,
}

struct ActivityState {
    in_flight: usize,
    idle_since: Instant,
    /// Whether a request head has arrived yet.
    started: bool,
}

/// A request in flight; the connection is idle again once every one is dropped.
struct Busy(Arc<Activity>);

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                started: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(self: &Arc<Self>) -> Busy {
        let mut state = self.state();
        state.in_flight += 1;
        state.started = true;
        Busy(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in flight for `first` (before its first
    /// request head) or `then` (after it).
    async fn idle(&self, first: Duration, then: Duration) {
        loop {
            let deadline = {
                let state = self.state();
                (state.in_flight == 0)
                    .then(|| state.idle_since + if state.started { then } else { first })
            };
            match deadline {
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                // Busy: look again later.
                None => tokio::time::sleep(then).await,
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

// Run by the router tests, which include the example (`tests/router/edge.rs` drives the rest
// over loopback).
#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_network_and_mapped_ipv4_by_address() {
        assert_eq!(client(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(client(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(client(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn exempt_networks_parse_and_match() {
        let net = |text| Network::parse(text).unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.255.0.1")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("10.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "example.com",
        ] {
            assert!(Network::parse(bad).is_none(), "{bad:?}");
        }
    }
}
