//! [`RateLimitLoginLayer`]: limits failed logins per (client, username), per username and per
//! client, password verifications and registrations per client, before the login handler (and
//! its password hashing) runs.
//!
//! ```
//! use std::net::IpAddr;
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::ratelimit::{ClientAddr, LoginLimits, MemoryLimiterStore, RateLimitLoginLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let limiter = RateLimitLoginLayer::new(Arc::new(MemoryLimiterStore::new(LoginLimits::default())));
//! // A login handler that refuses every password. The limiter hands the body on as it read it,
//! // a `Full<Bytes>`, whatever body it was given (axum's, hyper's `Incoming`, tonic's).
//! let login = ServiceBuilder::new().layer(limiter).service_fn(|_: Request<Full<Bytes>>| async {
//!     Ok::<_, std::convert::Infallible>(
//!         Response::builder().status(401).body(String::from("wrong password")).unwrap(),
//!     )
//! });
//! let attempt = || {
//!     let mut request = Request::post("/token")
//!         .header("content-type", "application/x-www-form-urlencoded")
//!         .body(Full::<Bytes>::from("grant_type=password&username=alice&password=guess"))
//!         .unwrap();
//!     request.extensions_mut().insert(ClientAddr("203.0.113.7".parse::<IpAddr>().unwrap()));
//!     request
//! };
//! for _ in 0..6 {
//!     let response = login.clone().oneshot(attempt()).await?;
//!     assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! }
//! // Five failures are free, the sixth went through; the seventh must wait.
//! let limited = login.oneshot(attempt()).await?;
//! assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(limited.headers()["retry-after"], "1");
//! # Ok(()) }
//! ```
//!
//! For each request the layer reads the body (up to [`DEFAULT_BODY_LIMIT`]; more is answered
//! 413), takes the `username` from a form or a JSON object and normalises it
//! ([`normalize_username`]: RFC 8265's `UsernameCaseMapped` with full case folding), and finds
//! the client address: the peer ([`ClientAddr`] in the request extensions, or with the `router`
//! feature axum's `ConnectInfo<SocketAddr>`), or, only when the peer is a
//! [trusted proxy](RateLimitLoginLayer::trusted_proxies), the right-most untrusted entry of
//! the [one forwarding header](RateLimitLoginLayer::forwarded_header) those proxies write; an
//! IPv6 client counts as its `/64` ([`ipv6_prefix`](RateLimitLoginLayer::ipv6_prefix)). It
//! asks the [`LimiterStore`] (see [`LoginLimits`] for the policy); a limited attempt is
//! answered 429 with `Retry-After` and a JSON body (gRPC: status 8 `RESOURCE_EXHAUSTED`)
//! without calling the inner service. Otherwise the inner service gets the request with its
//! body's bytes unchanged, and the layer learns the outcome from the response: a
//! [`LoginOutcome`] in its extensions (set by [`AuthRouter`]), else 2xx is a success and 401,
//! gRPC 16 or a 400 whose JSON `error` is `invalid_grant` are failures. Failures count on the
//! failure limits; a success clears the (client, username) record. So that concurrent attempts
//! cannot all pass one check, each allowed attempt is counted as a failure before the inner
//! service runs and given back once it turns out otherwise (see [`LimiterStore`]).
//!
//! Beside failures, every attempt that names a username counts on its client's verification
//! rate ([`LoginLimits::per_client_verifications`], successes included, never given back), so
//! that valid logins looped by one client cannot take the password hasher from everyone else;
//! on a route set to [`Action::Registration`] every attempt counts on the client's registration
//! rate instead ([`LoginLimits::per_client_registrations`]), whatever its outcome, and no
//! username's record is touched.
//!
//! A request without a peer address is a misconfiguration: answered 500, never limited as if
//! every client were one. When the store fails, the layer keeps limiting with the same limits
//! in this process's memory (per instance, then, instead of shared), logs it and counts it,
//! and asks the store again after [`STORE_RETRY_AFTER`]; with
//! [`on_store_error`](RateLimitLoginLayer::on_store_error) set to
//! [`FailClosed`](StoreErrorPolicy::FailClosed) it answers 503 instead.
//!
//! [`AuthRouter`]: crate::router::AuthRouter

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::error::ConfigError;
use crate::ledger::Ledger;
use crate::response::{ResponseBody, error_body, grpc_status_response, is_grpc};
use crate::service::inner_service_accessors;
use crate::store::{self, StoreError, StoreErrorPolicy, StoreFuture};
use crate::username::normalize_username;

mod client;
mod events;
mod limits;
mod memory;

use client::Cidr;
pub use client::{ClientAddr, ForwardedHeader};
pub use limits::{Action, Decision, LimitReason, LoginLimits, NIST_MAX_FAILURES};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use limits::{ClientRates, Failures, Refund};
pub use memory::{DEFAULT_MAX_ENTRIES, MemoryLimiterStore};

/// How many leading bits of an IPv6 address make one client, unless
/// [`RateLimitLoginLayer::ipv6_prefix`] says otherwise.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The largest login body the layer reads (as the login router).
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024;

/// How long [`RateLimitLogin`] keeps counting in process memory after its store failed before
/// it asks the store again.
pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How much of a 400 answer the layer reads to tell `invalid_grant` from other errors.
const OUTCOME_BODY_LIMIT: usize = 4 * 1024;

/// What a limiter decides about: the client address and, when the body named one, the
/// normalised username.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoginKey<'a> {
    /// The client address; for an IPv6 client, its network
    /// ([`ipv6_prefix`](RateLimitLoginLayer::ipv6_prefix), `/64` by default).
    pub client: IpAddr,
    /// The normalised username; `None` for requests without one (a refresh grant, a
    /// revocation, a registration), which only per-client rules apply to.
    pub username: Option<&'a str>,
    /// What the guarded route does, which decides the rules that apply.
    pub action: Action,
}

/// Names the account a request is about when its body does not: a password change or an
/// account deletion made with a bearer token carries the password but not the username. Put
/// into the request's extensions before [`RateLimitLogin`] runs, it takes the place of the
/// body's `username` (normalised the same way), so that such a request is limited as a login
/// to that account is. The [`AuthRouter`](crate::router::AuthRouter) sets it on its own routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginName(pub String);

/// The client a [`RateLimitLogin`] counted a request as (its address, or for IPv6 its
/// network), put into the request's extensions for the service behind it: the
/// [`AuthRouter`](crate::router::AuthRouter) admits password hashing fairly across these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LimitedClient(pub IpAddr);

/// Where the limiter's counters live. Each method is one atomic decision or update.
/// Times are milliseconds since the Unix epoch, from the layer's clock.
///
/// An attempt is counted as a failure when it is allowed ([`attempt`](Self::attempt)), in the
/// same atomic step as the decision, and settled when its outcome is known: a failure keeps
/// the charge, a success clears the (client, username) record and the username's run of
/// failures ([`succeeded`](Self::succeeded)), and an attempt that was neither gets its charges
/// back ([`refund`](Self::refund)). Counting first is what makes the limits hold under
/// concurrency: attempts in flight together cannot all pass one check, so no more than the
/// free failures, the client's burst, or the failures before an account lock reach the
/// password check at once. An attempt whose caller goes away before the answer is given back
/// (nothing was learned from it).
///
/// Known limits of the accounting: a refund keeps the time of the attempt it gives back as
/// the record's latest, so an attempt that turns out to be neither restarts a running backoff
/// (as a wrong password would, without adding to the count); and a refund is not tied to its
/// own charge, so one that arrives after the record was cleared or expired takes back a later
/// failure instead.
pub trait LimiterStore: Send + Sync + 'static {
    /// Whether an attempt by `key` would be allowed now, counting nothing.
    fn check(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision>;
    /// Decides about an attempt by `key` and, when it is allowed, counts it as a failure of
    /// the pair, the username and the client, atomically with the decision.
    fn attempt(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision>;
    /// Settles an allowed attempt that succeeded: clears the (client, username) record and the
    /// username's run of failures, and gives the client back its charge.
    fn succeeded(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()>;
    /// Settles an allowed attempt that was neither a success nor a failure: gives back the
    /// failure [`attempt`](Self::attempt) counted on each failure record, or the registration
    /// it counted. A verification stays counted: the password check was asked for, and a
    /// client whose logins keep failing for want of capacity (503) must not keep its budget.
    fn refund(&self, key: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()>;

    /// The policy the store decides with, when it has one [`LoginLimits`]. [`RateLimitLogin`]
    /// limits with the same policy in process memory while the store is unreachable; a store
    /// that answers `None` (the default) gets [`LoginLimits::default`] there.
    fn limits(&self) -> Option<&LoginLimits> {
        None
    }
}

/// The outcome of a login, which a login handler may put into its response's extensions to
/// tell [`RateLimitLogin`] exactly (the [`AuthRouter`](crate::router::AuthRouter) does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The credentials were right.
    Success,
    /// The credentials were wrong (or the account unusable).
    Failure,
    /// Neither (a malformed request, an outage): not counted.
    Neither,
}

/// Applies [`RateLimitLogin`] to a login service.
#[derive(Clone)]
#[must_use]
pub struct RateLimitLoginLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    store: Arc<dyn LimiterStore>,
    /// Limits with the store's policy in process memory while the store is unreachable.
    fallback: Arc<MemoryLimiterStore>,
    /// Until when (Unix ms) attempts go to the fallback without asking the store; 0 while the
    /// store answers.
    degraded_until: Arc<AtomicU64>,
    /// Where refused attempts are recorded for the password hasher's fair admission.
    ledger: Option<Arc<Ledger>>,
    action: Action,
    trusted: Vec<Cidr>,
    forwarded_header: ForwardedHeader,
    ipv6_prefix: u8,
    body_limit: usize,
    on_store_error: StoreErrorPolicy,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl Config {
    fn now_ms(&self) -> u64 {
        (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl RateLimitLoginLayer {
    /// Limits logins with the counters in `store`.
    pub fn new(store: Arc<dyn LimiterStore>) -> Self {
        let limits = store.limits().cloned().unwrap_or_default();
        Self {
            config: Arc::new(Config {
                store,
                fallback: Arc::new(MemoryLimiterStore::new(limits)),
                degraded_until: Arc::new(AtomicU64::new(0)),
                ledger: None,
                action: Action::Login,
                trusted: Vec::new(),
                forwarded_header: ForwardedHeader::XForwardedFor,
                ipv6_prefix: DEFAULT_IPV6_PREFIX,
                body_limit: DEFAULT_BODY_LIMIT,
                on_store_error: StoreErrorPolicy::FailOpen,
                clock: Arc::new(SystemTime::now),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Trusts forwarding headers from peers in these networks (`10.0.0.0/8`, `::1`, ...).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] for an entry that is not an address or a CIDR network.
    pub fn trusted_proxies<'a>(
        mut self,
        networks: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ConfigError> {
        let networks = networks
            .into_iter()
            .map(Cidr::parse)
            .collect::<Result<Vec<_>, _>>()?;
        self.config_mut().trusted = networks;
        Ok(self)
    }

    /// Records every refused attempt in `ledger` (the router passes its hasher's).
    #[cfg(feature = "router")]
    pub(crate) fn ledger(mut self, ledger: Arc<Ledger>) -> Self {
        self.config_mut().ledger = Some(ledger);
        self
    }

    /// What the guarded route does (default [`Action::Login`]); [`Action::Registration`]
    /// counts every attempt on the client's registration rate.
    pub fn action(mut self, action: Action) -> Self {
        self.config_mut().action = action;
        self
    }

    /// Which forwarding header the trusted proxies write (default
    /// [`ForwardedHeader::XForwardedFor`]). Only that one is read; the other is ignored, since
    /// a proxy that appends to one header usually passes the other through from the client,
    /// who could then choose a new limiter key for every request.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.config_mut().forwarded_header = header;
        self
    }

    /// How many leading bits of an IPv6 client address make one client (default
    /// [`DEFAULT_IPV6_PREFIX`], 64).
    ///
    /// One subscriber is routinely given a whole `/64` (often a `/56` or `/48`), so an IPv6
    /// attacker can send every guess from a new address. Counted address by address, such a
    /// client would escape the per-client rate entirely and fill the store with fresh keys;
    /// counted by network, its addresses share one budget. Use 128 to count single addresses,
    /// or 48/56 when your clients get larger networks. IPv4 clients are counted by address.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] outside 32..=128: a shorter prefix would count whole
    /// providers as one client.
    pub fn ipv6_prefix(mut self, bits: u8) -> Result<Self, ConfigError> {
        if !(32..=128).contains(&bits) {
            return Err(ConfigError::InvalidSetting(
                "the ipv6 client prefix must be 32 to 128 bits",
            ));
        }
        self.config_mut().ipv6_prefix = bits;
        Ok(self)
    }

    /// The largest body read (default [`DEFAULT_BODY_LIMIT`]); larger ones are answered 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().body_limit = bytes;
        self
    }

    /// What to do when the store fails. The default, [`StoreErrorPolicy::FailOpen`], lets the
    /// login go ahead but never unlimited: the layer counts it in an in-process limiter with
    /// the store's policy ([`LimiterStore::limits`]), so limits degrade to per-instance limits
    /// and do not vanish. It stays on that limiter for [`STORE_RETRY_AFTER`] after a failure
    /// before asking the store again, logs when it falls back and when the store answers
    /// again, and counts every store error. `FailClosed` answers 503 instead.
    pub fn on_store_error(mut self, policy: StoreErrorPolicy) -> Self {
        self.config_mut().on_store_error = policy;
        self
    }

    /// The clock of the counters (default: the system clock); for tests.
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.config_mut().clock = Arc::new(clock);
        self
    }
}

impl fmt::Debug for RateLimitLoginLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLoginLayer")
            .field("trusted_proxies", &self.config.trusted)
            .field("forwarded_header", &self.config.forwarded_header)
            .field("ipv6_prefix", &self.config.ipv6_prefix)
            .field("body_limit", &self.config.body_limit)
            .field("on_store_error", &self.config.on_store_error)
            .field("action", &self.config.action)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for RateLimitLoginLayer {
    type Service = RateLimitLogin<S>;

    fn layer(&self, inner: S) -> RateLimitLogin<S> {
        RateLimitLogin {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// Limits failed logins to the inner service; see the [module docs](self).
///
/// It accepts a request with any body (axum's `Body`, hyper's `Incoming`, tonic's `Body`) and
/// hands the inner service the same request with the body it read, as a `Full<Bytes>`: the
/// inner service is a `Service<Request<Full<Bytes>>>`. axum's routes and routers, tonic's
/// generated servers and `Routes` accept any body, so they need no change.
#[derive(Clone)]
pub struct RateLimitLogin<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> RateLimitLogin<S> {
    /// Wraps `inner`, limiting logins with the counters of `store` (as
    /// [`RateLimitLoginLayer::new`]).
    pub fn new(inner: S, store: Arc<dyn LimiterStore>) -> Self {
        RateLimitLoginLayer::new(store).layer(inner)
    }

    inner_service_accessors!();
}

// In an impl of its own, for one inner type: the layer names no inner service, so
// `RateLimitLogin::layer(…)` would otherwise leave `S` to be spelled out.
impl RateLimitLogin<()> {
    /// The layer: [`RateLimitLoginLayer::new`].
    pub fn layer(store: Arc<dyn LimiterStore>) -> RateLimitLoginLayer {
        RateLimitLoginLayer::new(store)
    }
}

impl<S: fmt::Debug> fmt::Debug for RateLimitLogin<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLogin")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The future of [`RateLimitLogin`]. Boxed: reading the body, asking the store, calling the
/// inner service and recording the outcome is a state machine whose allocation costs nothing
/// next to the password hashing it guards.
pub type ResponseFuture<ResBody, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<ResBody>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimitLogin<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    ReqBody: Body + Send + 'static,
    ReqBody::Data: Send,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Send,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Take the service `poll_ready` made ready; leave a clone in its place.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        Box::pin(limit(config, inner, request))
    }
}

async fn limit<S, ReqBody, ResBody>(
    config: Arc<Config>,
    mut inner: S,
    request: Request<ReqBody>,
) -> Result<Response<ResponseBody<ResBody>>, S::Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>>,
    ReqBody: Body,
    ResBody: Body<Data = Bytes>,
{
    let grpc = is_grpc(request.headers());
    let Some(peer) = client::peer(&request) else {
        events::without_peer();
        return Ok(answer(grpc, Refusal::Misconfigured));
    };
    let client = client::client_ip(
        peer,
        request.headers(),
        &config.trusted,
        config.forwarded_header,
    );
    let client = client::network(client, config.ipv6_prefix);
    let (mut parts, body) = request.into_parts();
    let Some(body) = read_limited(&parts.headers, body, config.body_limit).await else {
        events::body_too_large();
        return Ok(answer(grpc, Refusal::TooLarge));
    };
    let username = match config.action {
        Action::Login => match parts.extensions.get::<LoginName>() {
            // A stored name the current rules refuse (an account from before them) still
            // names its account, as it is.
            Some(LoginName(name)) => normalize_username(name).or_else(|| Some(name.clone())),
            None => username(&parts.headers, &body),
        },
        // A registration attempt never counts against the account of the name it asks for.
        _ => None,
    };
    let key = LoginKey {
        client,
        username: username.as_deref(),
        action: config.action,
    };

    // The attempt is counted as a failure here, before the login runs, and settled below.
    let counted = match attempt(&config, &key).await {
        Ok((store, Decision::Allow)) => Some(Counted::new(&config, store, &key)),
        Ok((
            _,
            Decision::Limit {
                reason,
                retry_after,
            },
        )) => {
            if let Some(ledger) = &config.ledger {
                ledger.record(Some(client), std::time::Instant::now());
            }
            events::limited(client, reason, retry_after);
            return Ok(answer(grpc, Refusal::Limited(retry_after)));
        }
        Err(_) => return Ok(answer(grpc, Refusal::Unavailable)),
    };
    parts.extensions.insert(LimitedClient(client));

    let response = match inner
        .call(Request::from_parts(parts, Full::new(body)))
        .await
    {
        Ok(response) => response,
        Err(error) => {
            if let Some(counted) = counted {
                counted.settle(LoginOutcome::Neither).await;
            }
            return Err(error);
        }
    };
    let (response, outcome) = outcome(response).await;
    if let Some(counted) = counted {
        counted.settle(outcome).await;
    }
    Ok(response)
}

/// Asks the store to decide about (and count) an attempt; while the store is unreachable, the
/// in-process fallback decides, unless the policy is to fail closed (`Err`: answer 503).
/// Returns the store that counted the attempt, which settles it.
async fn attempt(
    config: &Config,
    key: &LoginKey<'_>,
) -> Result<(Arc<dyn LimiterStore>, Decision), StoreError> {
    let now = config.now_ms();
    let fail_open = config.on_store_error == StoreErrorPolicy::FailOpen;
    let degraded_until = config.degraded_until.load(Ordering::Relaxed);
    if fail_open && now < degraded_until {
        let fallback = Arc::clone(&config.fallback);
        let decision = fallback.attempt(key, now).await?;
        return Ok((fallback as _, decision));
    }
    match config.store.attempt(key, now).await {
        Ok(decision) => {
            if degraded_until != 0
                && config
                    .degraded_until
                    .compare_exchange(degraded_until, 0, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                events::store_recovered();
            }
            Ok((Arc::clone(&config.store), decision))
        }
        Err(error) if fail_open => {
            let until = now.saturating_add(ms(STORE_RETRY_AFTER));
            let previous = config.degraded_until.swap(until, Ordering::Relaxed);
            if previous == 0 {
                store::failed(
                    store::Kind::Limiter,
                    &error,
                    "RateLimitLogin: limiter store unavailable; limiting in this process only",
                );
            } else {
                events::store_still_failing(&error);
            }
            let fallback = Arc::clone(&config.fallback);
            let decision = fallback.attempt(key, now).await?;
            Ok((fallback as _, decision))
        }
        Err(error) => {
            store::failed(
                store::Kind::Limiter,
                &error,
                "RateLimitLogin: limiter store unavailable; answering 503 (fail closed)",
            );
            Err(error)
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An attempt the store counted and nobody has settled yet.
///
/// Settled, a failure keeps its charge and anything else is given back. Dropped unsettled (the
/// caller went away before the answer), it is given back as well: no outcome reached anyone,
/// so nothing was learned, and keeping the charge would let anyone who cancels requests pile
/// failures onto an account without a password ever being checked.
struct Counted {
    config: Arc<Config>,
    /// The store that counted the attempt (the configured one, or the in-process fallback).
    store: Arc<dyn LimiterStore>,
    client: IpAddr,
    username: Option<String>,
    /// Whether dropping it still has to give the attempt back.
    armed: bool,
}

impl Counted {
    fn new(config: &Arc<Config>, store: Arc<dyn LimiterStore>, key: &LoginKey<'_>) -> Self {
        Self {
            config: Arc::clone(config),
            store,
            client: key.client,
            username: key.username.map(str::to_owned),
            armed: true,
        }
    }

    fn key(&self) -> LoginKey<'_> {
        LoginKey {
            client: self.client,
            username: self.username.as_deref(),
            action: self.config.action,
        }
    }

    async fn settle(mut self, outcome: LoginOutcome) {
        // The settlement is this future's from here on, even if it is dropped mid-way.
        self.armed = false;
        let now = self.config.now_ms();
        let key = self.key();
        let settled = match (self.config.action, outcome) {
            // A registration attempt is kept whatever its outcome.
            (Action::Registration, _) | (_, LoginOutcome::Failure) => return,
            (_, LoginOutcome::Success) => self.store.succeeded(&key, now).await,
            (_, LoginOutcome::Neither) => self.store.refund(&key, now).await,
        };
        if let Err(error) = settled {
            store::failed(
                store::Kind::Limiter,
                &error,
                "RateLimitLogin: could not record a login outcome",
            );
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let refund = self.store.refund(&self.key(), self.config.now_ms());
        match refund.into_ready() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => abandoned_not_refunded(&error),
            Err(pending) => finish_in_background(pending),
        }
    }
}

/// Drives a store's refund that could not finish in `drop`, on the tokio runtime when there
/// is one (there always is for the Redis store). Without one the charge stays: the safe side.
fn finish_in_background(pending: StoreFuture<()>) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(error) = pending.await {
                abandoned_not_refunded(&error);
            }
        });
        return;
    }
    drop(pending);
    tracing::warn!(
        "RateLimitLogin: no runtime to give back an abandoned attempt; it stays counted"
    );
}

fn abandoned_not_refunded(error: &StoreError) {
    store::failed(
        store::Kind::Limiter,
        error,
        "RateLimitLogin: could not give back an abandoned attempt",
    );
}

/// The body, or `None` when it is larger than `limit` (checked on the declared length first,
/// then while reading, so no more than `limit` bytes are ever held). A body that fails to
/// read is handed on empty; the inner service then refuses a request without parameters.
async fn read_limited<B: Body>(headers: &http::HeaderMap, body: B, limit: usize) -> Option<Bytes> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return None;
    }
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Some(Bytes::new());
        };
        if let Ok(mut data) = frame.into_data() {
            use bytes::Buf as _;
            if collected.len() + data.remaining() > limit {
                return None;
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let len = chunk.len();
                data.advance(len);
            }
        }
    }
    Some(collected.freeze())
}

/// The normalised `username` of a form or JSON password login. Requests of another grant type
/// have none, whatever their body says: a refresh grant naming a username must not count (or,
/// on success, clear) that user's failures.
fn username(headers: &http::HeaderMap, body: &[u8]) -> Option<String> {
    let content_type = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = content_type.split(';').next()?.trim();
    let (grant_type, raw) = if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        let field = |name: &str| {
            form_urlencoded::parse(body)
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        (field("grant_type"), field("username"))
    } else if essence.eq_ignore_ascii_case("application/json") {
        #[derive(serde::Deserialize)]
        struct Login {
            grant_type: Option<String>,
            username: Option<String>,
        }
        let login = serde_json::from_slice::<Login>(body).ok()?;
        (login.grant_type, login.username)
    } else {
        return None;
    };
    if grant_type.is_some_and(|grant| grant != "password") {
        return None;
    }
    raw.and_then(|raw| normalize_username(&raw).or_else(|| crate::username::legacy_key(&raw)))
}

/// What the inner response says about the login, reading the body of a 400 (at most
/// [`OUTCOME_BODY_LIMIT`] bytes) to find `invalid_grant`.
async fn outcome<B>(response: Response<B>) -> (Response<ResponseBody<B>>, LoginOutcome)
where
    B: Body<Data = Bytes>,
{
    if let Some(outcome) = response.extensions().get::<LoginOutcome>() {
        let outcome = *outcome;
        return (response.map(ResponseBody::inner), outcome);
    }
    let status = response.status();
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .map(HeaderValue::as_bytes);
    let outcome = match (status, grpc_status) {
        (_, Some(b"16")) => LoginOutcome::Failure,
        (_, Some(b"0")) => LoginOutcome::Success,
        (_, Some(_)) => LoginOutcome::Neither,
        (StatusCode::UNAUTHORIZED, None) => LoginOutcome::Failure,
        (s, None) if s.is_success() && !is_grpc(response.headers()) => LoginOutcome::Success,
        (StatusCode::BAD_REQUEST, None) => {
            let (parts, body) = response.into_parts();
            let declared_small = body
                .size_hint()
                .upper()
                .is_some_and(|n| n <= OUTCOME_BODY_LIMIT as u64);
            if !declared_small {
                return (
                    Response::from_parts(parts, ResponseBody::inner(body)),
                    LoginOutcome::Neither,
                );
            }
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let outcome = if is_invalid_grant(&bytes) {
                LoginOutcome::Failure
            } else {
                LoginOutcome::Neither
            };
            return (
                Response::from_parts(parts, ResponseBody::rejection(bytes)),
                outcome,
            );
        }
        _ => LoginOutcome::Neither,
    };
    (response.map(ResponseBody::inner), outcome)
}

fn is_invalid_grant(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct OAuthError<'a> {
        #[serde(borrow)]
        error: Option<&'a str>,
    }
    serde_json::from_slice::<OAuthError<'_>>(body).is_ok_and(|e| e.error == Some("invalid_grant"))
}

/// Why the layer answered itself.
enum Refusal {
    Limited(Duration),
    TooLarge,
    Unavailable,
    Misconfigured,
}

/// The `Retry-After` of a wait: whole seconds, rounded up, at least one (a client told 0 would
/// retry at once). The event of the refusal reports the same number.
pub(super) fn retry_after_secs(after: Duration) -> u64 {
    (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1)
}

fn answer<B>(grpc: bool, refusal: Refusal) -> Response<ResponseBody<B>> {
    let (status, grpc_code, code, description, retry_after) = match refusal {
        Refusal::Limited(after) => (
            StatusCode::TOO_MANY_REQUESTS,
            "8",
            "rate_limited",
            "too many failed logins, try again later",
            Some(retry_after_secs(after)),
        ),
        Refusal::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "8",
            "invalid_request",
            "request body too large",
            None,
        ),
        Refusal::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "14",
            "temporarily_unavailable",
            "login temporarily unavailable",
            Some(1),
        ),
        Refusal::Misconfigured => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "13",
            "server_error",
            "login is misconfigured",
            None,
        ),
    };
    let mut response = if grpc {
        grpc_status_response(grpc_code, description)
    } else {
        let mut response = Response::new(error_body(code, description));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        response
    };
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response.map(ResponseBody::rejection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_a_whole_second_at_least_one() {
        let wait = |ms| retry_after_secs(Duration::from_millis(ms));
        assert_eq!(
            [
                wait(0),
                wait(1),
                wait(900),
                wait(1000),
                wait(1001),
                wait(59_999)
            ],
            [1, 1, 1, 1, 2, 60]
        );
    }
}
