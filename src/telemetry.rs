//! Observability: the `tracing` events the crate emits when it rejects a request, and the
//! counters it records through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`, on by default). Names, labels and targets are the constants below, so dashboards
//! and log filters can be built from these docs.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::{Algorithm, KeySet, TokenSigner, Verifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[7u8; 32])?)
//!     .issuer("https://issuer.example").audience("api").build()?;
//! let mut service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(verifier))
//!     .service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
//!     });
//!
//! // Any recorder works: metrics-exporter-prometheus in production, metrics-util's
//! // DebuggingRecorder here. Without one installed, counting costs next to nothing.
//! let recorder = metrics_util::debugging::DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let _scope = metrics::set_default_local_recorder(&recorder);
//!
//! // A token signed with another key.
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let forged = TokenSigner::hmac(Algorithm::HS256, &[8u8; 32])?.sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api", "sub": "mallory", "jti": "1",
//!     "iat": now, "exp": now + 60,
//! }))?;
//! let request = Request::builder().header("authorization", format!("Bearer {forged}")).body(String::new())?;
//! let response = service.ready().await?.call(request).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//!
//! # #[cfg(feature = "metrics")] {
//! use tower_jwt_auth::telemetry::{REASON, RESULT, VERIFICATIONS_TOTAL};
//! let counted: Vec<_> = snapshotter.snapshot().into_vec().into_iter()
//!     .map(|(key, _, _, value)| (key.key().clone(), value))
//!     .filter(|(key, _)| key.name() == VERIFICATIONS_TOTAL)
//!     .collect();
//! let (key, value) = &counted[0];
//! let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
//! assert_eq!(labels, [(RESULT, "failed"), (REASON, "invalid_signature")]);
//! assert_eq!(*value, metrics_util::debugging::DebugValue::Counter(1));
//! # }
//! # Ok(()) }
//! ```
//!
//! # Events
//!
//! Every rejection emits one event with a fixed target and a `reason` field holding a stable code
//! ([`ErrorKind::as_str`](crate::ErrorKind::as_str) for the layers, the RFC 6749 `error` code for
//! the router, a [`LimitReason`][limit-reason] code for the limiter). Ordinary client errors (a
//! missing or expired token, a wrong password) are `DEBUG`: they are routine, and a busy service
//! sees thousands. What an operator must hear about is `WARN` or `ERROR`: keys or a store that
//! cannot be had, a replayed refresh token, a hasher at capacity, a locked account.
//!
//! | target | level | when | fields |
//! |---|---|---|---|
//! | [`TARGET_BEARER`] | `DEBUG` (`WARN` for `unavailable`) | `BearerAuth` rejects a request (400, 401, 503) | `reason`, `claim` (a registered claim name such as `exp`, when the rule concerns one) |
//! | [`TARGET_REQUIRE`] | `DEBUG` | `RequireRole` / `RequireScope` rejects (403, or 401 without claims) | `reason`, `check` (`role` / `scope`), `required` (the layer's configured list) |
//! | [`TARGET_RATE_LIMIT`] | `INFO` (`WARN` for `account_locked`) | `RateLimitLogin` answers 429 | `reason`, `client` (the client address or network), `retry_after_secs` |
//! | [`TARGET_RATE_LIMIT`] | `DEBUG` / `ERROR` | 413 (`body_too_large`); 500 (`no_peer_address`) | `reason` |
//! | [`TARGET_ROUTER`] | `DEBUG` | `POST /token` answers an error; `/revoke`, `/logout`, `/logout/all`, `/register` answer an OAuth error, 413 or 503 (registration's own 400/409 policy answers are not logged) | `reason` (the body's `error` code), `endpoint`, `grant` (token endpoint) |
//! | [`TARGET_ROUTER`] | `WARN` | a rotated refresh token was presented again: its session is revoked | `reason` (`refresh_reuse`), `user`, `sid` |
//! | [`TARGET_PASSWORD`] | `WARN` | the password hasher refused a call at capacity (the router answers 503) | `reason` (`overloaded`) |
//! | [`TARGET_STORE`] | `ERROR` | a revocation, limiter or router store failed | `reason` (`store_unavailable`), `store`, `error` (the store's message); the message says what the caller did (failed open or closed) |
//! | [`TARGET_REMOTE`] | `INFO` / `WARN` | remote keys loaded (when they changed) / a fetch failed | `keys`, `kids`, `lifetime_secs` / `reason`, `error`, `failures` |
//! | [`TARGET_MAIL`] | `INFO` / `WARN` | the development mailer's message, link included (`LogMailer`: never in production) / a mail the router could not send, or a mail request dropped with `router::MAX_MAIL_JOBS` in progress | `to`, `subject`, `body` / `error`, `purpose` (`password_reset`, `email_verification`) |
//! | [`TARGET_AUDIT`] | `INFO` | the router changed an account: `password_changed`, `user_disabled`, `user_enabled`, `grants_changed`, `user_deleted` (by an administrator), `self_deleted`, `password_reset` (by a mailed link), `email_verified` | `event`, `actor` (the user id that acted), `subject` (the user id acted on) |
//!
//! Never in any event: a token or any part of one, an `Authorization` or `Cookie` header, a
//! password or hash, a refresh token, a client secret. Usernames are left out too: they are
//! personal data, and a failed login's username is often a password typed into the wrong
//! field. Events identify accounts by user id (`user`) and sessions by `sid`, and the limiter's
//! events name the client address it keys on (an IPv6 client as its network), which is what an
//! operator needs to block an abuser; filter [`TARGET_RATE_LIMIT`] out where addresses must
//! not be logged. The crate opens no spans of its own: its events land in the request span of
//! whatever tracing layer (tower-http's `TraceLayer`, say) wraps it.
//!
//! # Counters
//!
//! All are monotonic counters named Prometheus-style; label values are the fixed codes listed,
//! never user data, so each counter has a small, bounded set of series.
//!
//! | name | labels | counts |
//! |---|---|---|
//! | [`VERIFICATIONS_TOTAL`] | [`RESULT`] = `ok` \| `anonymous` \| `failed`, and for `failed` [`REASON`] = an [`ErrorKind`](crate::ErrorKind) code | requests `BearerAuth` decided: `ok` when it passed them on with claims (after any key fetch and revocation check), `anonymous` when an optional layer let one without credentials through, `failed` with the reason it was rejected (`missing`, `invalid_request`, `expired`, `revoked`, `unavailable`, ...) |
//! | [`ACCESS_DENIED_TOTAL`] | [`CHECK`] = `role` \| `scope`, [`REASON`] = `insufficient_scope` \| `missing` | `RequireRole` / `RequireScope` rejections |
//! | [`LOGINS_TOTAL`] | [`RESULT`] = `ok` \| `failed`, and for `failed` [`REASON`] = the answer's `error` code | password grants at `POST /token` (`invalid_grant` is a wrong password, unknown user or disabled account) |
//! | [`REFRESHES_TOTAL`] | [`RESULT`] = `ok` \| `failed`, and for `failed` [`REASON`] = the answer's `error` code | refresh grants at `POST /token`; `ok` is one rotation |
//! | [`REFRESH_REUSE_TOTAL`] | none | rotated refresh tokens presented again (each revokes its session) |
//! | [`LOGIN_RATE_LIMITED_TOTAL`] | [`LIMIT`] = `client_and_username` \| `username` \| `account_locked` \| `client` \| `verifications` \| `registrations` | 429 answers of `RateLimitLogin`, by the limit that applied |
//! | [`PASSWORD_HASHER_OVERLOADED_TOTAL`] | none | `PasswordHasher` calls refused at capacity |
//! | [`STORE_ERRORS_TOTAL`] | [`STORE`] = `revocation` \| `limiter` \| `router` | failed calls to a store (`revocation`: `BearerAuth`'s check; `router`: the router's user, refresh and revocation stores) |
//! | [`JWKS_FETCHES_TOTAL`] | [`RESULT`] = `ok` \| `failed`, and for `failed` [`REASON`] = a [`FetchError::as_str`][fetch-error] code | `RemoteJwks` fetches, discovery included |
//! | [`AUDIT_EVENTS_TOTAL`] | [`EVENT`] = an audit event of [`TARGET_AUDIT`] | changes to accounts made through the router |
//! | [`VERIFICATION_CACHE_TOTAL`] | [`RESULT`] = `hit` \| `miss` | lookups in a verifier's [verification cache](crate::VerifierBuilder::cache), whoever called the verifier (a hit whose claims then fail their re-check is still a hit) |
//!
//! Token requests without a supported `grant_type` (and bodies that cannot be read) are
//! logged but counted in neither [`LOGINS_TOTAL`] nor [`REFRESHES_TOTAL`]. Direct calls of
//! [`Verifier::verify`](crate::Verifier::verify) are not counted: the verifier is a pure
//! function that applications also call for other purposes (the router's `/revoke` does), so
//! only the layer's decisions are. [`describe`][describe-fn] registers a description of each
//! counter with the installed recorder (Prometheus `# HELP` lines).
//!
//! With no recorder installed (the default), counting is a thread-local read and an atomic
//! load; keys are built at compile time, so no call allocates. Without the `metrics` feature
//! nothing is counted and the events are unchanged.
//!
#![cfg_attr(
    feature = "remote-jwks",
    doc = "[fetch-error]: crate::remote::FetchError::as_str"
)]
#![cfg_attr(not(feature = "remote-jwks"), doc = "[fetch-error]: crate#features")]
#![cfg_attr(
    feature = "rate-limit",
    doc = "[limit-reason]: crate::ratelimit::LimitReason"
)]
#![cfg_attr(not(feature = "rate-limit"), doc = "[limit-reason]: crate#features")]
#![cfg_attr(feature = "metrics", doc = "[describe-fn]: describe")]
#![cfg_attr(not(feature = "metrics"), doc = "[describe-fn]: crate#features")]

/// Target of `BearerAuth`'s events.
pub const TARGET_BEARER: &str = "tower_jwt_auth::bearer";
/// Target of `RequireRole`'s and `RequireScope`'s events.
pub const TARGET_REQUIRE: &str = "tower_jwt_auth::require";
/// Target of `RateLimitLogin`'s events.
pub const TARGET_RATE_LIMIT: &str = "tower_jwt_auth::ratelimit";
/// Target of the login router's events.
pub const TARGET_ROUTER: &str = "tower_jwt_auth::router";
/// Target of `PasswordHasher`'s events.
pub const TARGET_PASSWORD: &str = "tower_jwt_auth::password";
/// Target of store failures, whichever component met them.
pub const TARGET_STORE: &str = "tower_jwt_auth::store";
/// Target of `RemoteJwks`'s events.
pub const TARGET_REMOTE: &str = "tower_jwt_auth::remote";
/// Target of the development mailer's messages (`mail::LogMailer`) and of mail the login
/// router could not send.
pub const TARGET_MAIL: &str = "tower_jwt_auth::mail";
/// Target of the login router's audit events: one per change to an account (see the table
/// above). A short, stable name, so that an audit log can be routed apart from the rest.
pub const TARGET_AUDIT: &str = "audit";

/// Requests `BearerAuth` decided. Labels [`RESULT`] and, for failures, [`REASON`].
pub const VERIFICATIONS_TOTAL: &str = "tower_jwt_auth_verifications_total";
/// `RequireRole` and `RequireScope` rejections. Labels [`CHECK`] and [`REASON`].
pub const ACCESS_DENIED_TOTAL: &str = "tower_jwt_auth_access_denied_total";
/// Password grants. Labels [`RESULT`] and, for failures, [`REASON`].
pub const LOGINS_TOTAL: &str = "tower_jwt_auth_logins_total";
/// Refresh grants. Labels [`RESULT`] and, for failures, [`REASON`].
pub const REFRESHES_TOTAL: &str = "tower_jwt_auth_refreshes_total";
/// Replayed refresh tokens (reuse detected, session revoked). No labels.
pub const REFRESH_REUSE_TOTAL: &str = "tower_jwt_auth_refresh_reuse_total";
/// Logins refused by `RateLimitLogin` (429). Label [`LIMIT`].
pub const LOGIN_RATE_LIMITED_TOTAL: &str = "tower_jwt_auth_login_rate_limited_total";
/// Password hasher calls refused at capacity. No labels.
pub const PASSWORD_HASHER_OVERLOADED_TOTAL: &str =
    "tower_jwt_auth_password_hasher_overloaded_total";
/// Failed store calls. Label [`STORE`].
pub const STORE_ERRORS_TOTAL: &str = "tower_jwt_auth_store_errors_total";
/// `RemoteJwks` fetches. Labels [`RESULT`] and, for failures, [`REASON`].
pub const JWKS_FETCHES_TOTAL: &str = "tower_jwt_auth_jwks_fetches_total";

/// Lookups in verification caches. Label [`RESULT`] (`hit`, `miss`).
pub const VERIFICATION_CACHE_TOTAL: &str = "tower_jwt_auth_verification_cache_total";
/// Changes to accounts (the router's audit events). Label [`EVENT`].
pub const AUDIT_EVENTS_TOTAL: &str = "tower_jwt_auth_audit_events_total";

/// Label: the outcome (`ok`, `failed`; `anonymous` for [`VERIFICATIONS_TOTAL`]; `hit`, `miss`
/// for [`VERIFICATION_CACHE_TOTAL`]).
pub const RESULT: &str = "result";
/// Label: the stable reason code of a failure.
pub const REASON: &str = "reason";
/// Label: which check of [`ACCESS_DENIED_TOTAL`] (`role`, `scope`).
pub const CHECK: &str = "check";
/// Label: which limit of [`LOGIN_RATE_LIMITED_TOTAL`] applied.
pub const LIMIT: &str = "limit";
/// Label: which store of [`STORE_ERRORS_TOTAL`] failed (`revocation`, `limiter`, `router`).
pub const STORE: &str = "store";
/// Label: which change of [`AUDIT_EVENTS_TOTAL`] (the audit event's `event` field).
pub const EVENT: &str = "event";

/// Registers a description of every counter with the installed recorder (a Prometheus
/// exporter renders them as `# HELP` lines). Call it once, after installing the recorder;
/// counting works without it.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::describe_counter;
    describe_counter!(
        VERIFICATIONS_TOTAL,
        "Requests BearerAuth decided, by result and rejection reason."
    );
    describe_counter!(
        ACCESS_DENIED_TOTAL,
        "RequireRole and RequireScope rejections, by check and reason."
    );
    describe_counter!(
        LOGINS_TOTAL,
        "Password grants at the token endpoint, by result and error code."
    );
    describe_counter!(
        REFRESHES_TOTAL,
        "Refresh grants at the token endpoint, by result and error code."
    );
    describe_counter!(
        REFRESH_REUSE_TOTAL,
        "Rotated refresh tokens presented again; each revoked its session."
    );
    describe_counter!(
        LOGIN_RATE_LIMITED_TOTAL,
        "Logins refused by RateLimitLogin, by the limit that applied."
    );
    describe_counter!(
        PASSWORD_HASHER_OVERLOADED_TOTAL,
        "Password hashing calls refused because the hasher was at capacity."
    );
    describe_counter!(STORE_ERRORS_TOTAL, "Failed store calls, by store.");
    describe_counter!(
        JWKS_FETCHES_TOTAL,
        "Remote JWKS fetches, by result and failure reason."
    );
    describe_counter!(
        VERIFICATION_CACHE_TOTAL,
        "Lookups in verification caches, by hit or miss."
    );
    describe_counter!(
        AUDIT_EVENTS_TOTAL,
        "Changes to accounts made through the login router, by event."
    );
}

/// Counting, with keys built at compile time: a call allocates nothing, whatever the recorder.
/// Components count through [`count!`] and [`count_by!`]; a match over several constant keys
/// calls [`metric::one`] with [`metric::key!`] directly.
#[cfg(feature = "metrics")]
pub(crate) mod metric {
    use metrics::{Key, Level, Metadata};

    /// A `&'static Key` with this name and these labels, every part a constant.
    macro_rules! key {
        ($name:expr $(, $label:expr => $value:expr)* $(,)?) => {{
            const LABELS: &[::metrics::Label] =
                &[$(::metrics::Label::from_static_parts($label, $value)),*];
            static KEY: ::metrics::Key = ::metrics::Key::from_static_parts($name, LABELS);
            &KEY
        }};
    }
    pub(crate) use key;

    static METADATA: Metadata<'static> =
        Metadata::new("tower_jwt_auth", Level::INFO, Some(module_path!()));

    /// Adds one to the counter `key` of the current recorder (a no-op without one).
    #[inline]
    pub(crate) fn one(key: &'static Key) {
        metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(1));
    }
}

/// Adds one to the counter with this name and these constant labels. Without the `metrics`
/// feature nothing is counted; the names are still used, so they compile the same either way.
macro_rules! count {
    ($name:expr $(, $label:expr => $value:expr)* $(,)?) => {
        #[cfg(feature = "metrics")]
        $crate::telemetry::metric::one($crate::telemetry::metric::key!($name $(, $label => $value)*));
        #[cfg(not(feature = "metrics"))]
        let _ = ($name, $(($label, $value)),*);
    };
}
pub(crate) use count;

/// Adds one to a counter whose label `$by` is the code of `$value`, an enum whose variants are
/// all listed: each variant gets its own constant key, and a variant added later and not
/// listed fails to compile. Without the `metrics` feature, as [`count!`].
macro_rules! count_by {
    (
        $value:expr => $by:expr,
        $enum:ident :: { $($variant:ident),* $(,)? },
        $code:path,
        $name:expr $(, [$($fixed:tt)*])?
    ) => {
        $crate::telemetry::count_by!(@each $value, $by, $enum, [$($variant)*], $code, $name, [$($($fixed)*)?]);
        #[cfg(not(feature = "metrics"))]
        let _ = ($value, $by, $name);
        $crate::telemetry::count_by!(@unused $($($fixed)*)?);
    };
    (@each $value:expr, $by:expr, $enum:ident, [$($variant:ident)*], $code:path, $name:expr, $fixed:tt) => {
        #[cfg(feature = "metrics")]
        $crate::telemetry::metric::one(match $value {
            $($enum::$variant => $crate::telemetry::count_by!(@key $name, $fixed, $by => $code($enum::$variant)),)*
        });
    };
    (@key $name:expr, [$($label:expr => $fixed:expr),*], $by:expr => $code:expr) => {
        $crate::telemetry::metric::key!($name $(, $label => $fixed)*, $by => $code)
    };
    (@unused $($label:expr => $fixed:expr),*) => {
        $(
            #[cfg(not(feature = "metrics"))]
            let _ = ($label, $fixed);
        )*
    };
}
pub(crate) use count_by;
