//! [`RequireScopeLayer`] and [`RequireRoleLayer`]: authorisation after
//! [`BearerAuthLayer`](crate::bearer::BearerAuthLayer) authenticated the request.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_jwt_auth::bearer::BearerAuthLayer;
//! use tower_jwt_auth::require::{RequireRoleLayer, RequireScopeLayer, RoleHierarchy};
//! use tower_jwt_auth::{Algorithm, KeySet, TokenSigner, Verifier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = [7u8; 32];
//! let verifier = Verifier::builder(KeySet::hmac(Algorithm::HS256, &secret)?)
//!     .issuer("https://issuer.example").audience("api").build()?;
//! let roles = RoleHierarchy::new().grant("admin", ["moderator"]).grant("moderator", ["user"]);
//! let mut service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(verifier))              // outermost: authenticate
//!     .layer(RequireRoleLayer::any(["user"])?.hierarchy(&roles))
//!     .layer(RequireScopeLayer::all(["items:read"])?)
//!     .service_fn(|_: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("items")))
//!     });
//!
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let signer = TokenSigner::hmac(Algorithm::HS256, &secret)?;
//! let token = |scope: &str| signer.sign(&serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api", "sub": "alice", "jti": "1",
//!     "iat": now, "exp": now + 60, "roles": ["admin"], "scope": scope,
//! }));
//! let call = |token: String| Request::builder().header("authorization", format!("Bearer {token}")).body(String::new());
//!
//! // An admin is a user through the hierarchy; the scope is there.
//! let ok = service.ready().await?.call(call(token("items:read")?)?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//! // Authenticated but without the scope: 403 with the scope in the challenge.
//! let denied = service.ready().await?.call(call(token("profile")?)?).await?;
//! assert_eq!(denied.status(), StatusCode::FORBIDDEN);
//! assert!(denied.headers()["www-authenticate"].to_str()?.contains(r#"scope="items:read""#));
//! # Ok(()) }
//! ```
//!
//! Both read only the [`Claims`] that `BearerAuth` put into the request extensions, never a
//! header: without claims (the layer order is wrong, or an optional `BearerAuth` let an
//! anonymous request through) they answer 401. Matching is exact and case-sensitive.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::claims::{Claims, is_scope_token};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::response::{DefaultRejection, OnRejection, Responder, ResponseBody};
use crate::service::inner_service_accessors;
use crate::telemetry::TARGET_REQUIRE;

mod future;

pub use future::ResponseFuture;

/// Whether any one, or all, of the listed roles or scopes are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    Any,
    All,
}

/// Shared by both checks: what is required and how to reject.
#[derive(Clone)]
struct Requirement {
    /// One entry per listed role or scope: the values that satisfy it (for roles, the role and
    /// every role that implies it through the hierarchy).
    satisfied_by: Box<[Box<[Box<str>]>]>,
    listed: Box<[Box<str>]>,
    mode: Match,
    responder: Responder,
}

impl Requirement {
    fn new<I>(values: I, mode: Match, valid: fn(&str) -> bool) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let listed: Box<[Box<str>]> = values.into_iter().map(|v| Box::from(v.as_ref())).collect();
        if listed.is_empty() {
            return Err(ConfigError::InvalidSetting("nothing required"));
        }
        if !listed.iter().all(|value| valid(value)) {
            return Err(ConfigError::InvalidSetting(
                "scopes must be RFC 6749 scope tokens; roles must be non-empty without control characters",
            ));
        }
        let satisfied_by = listed.iter().map(|v| Box::from([v.clone()])).collect();
        Ok(Self {
            satisfied_by,
            listed,
            mode,
            responder: Responder::default(),
        })
    }

    fn is_met(&self, has: impl Fn(&str) -> bool) -> bool {
        let mut requirements = self.satisfied_by.iter();
        let met = |alternatives: &[Box<str>]| alternatives.iter().any(|value| has(value));
        match self.mode {
            Match::Any => requirements.any(|alternatives| met(alternatives)),
            Match::All => requirements.all(|alternatives| met(alternatives)),
        }
    }

    /// 401 without claims, 403 when they fall short.
    fn check<B>(
        &self,
        request: &Request<B>,
        has: impl Fn(&Claims, &str) -> bool,
    ) -> Result<(), AuthError> {
        let claims = request
            .extensions()
            .get::<Claims>()
            .ok_or(AuthError::new(ErrorKind::Missing))?;
        if self.is_met(|value| has(claims, value)) {
            Ok(())
        } else {
            Err(AuthError::new(ErrorKind::InsufficientScope))
        }
    }
}

/// Which authorisation layer: the value of the `check` label of [`ACCESS_DENIED_TOTAL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    Role,
    Scope,
}

impl Check {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Role => "role",
            Self::Scope => "scope",
        }
    }
}

/// `RequireRole` or `RequireScope` rejected a request (`Missing`: no claims at all).
fn access_denied(check: Check, error: AuthError, required: &[Box<str>]) {
    let missing = error.kind() == ErrorKind::Missing;
    tracing::debug!(
        target: TARGET_REQUIRE,
        reason = error.kind().as_str(),
        check = check.as_str(),
        ?required,
        "request rejected"
    );
    #[cfg(feature = "metrics")]
    {
        use crate::telemetry::metric::{key, one};
        use crate::telemetry::{ACCESS_DENIED_TOTAL, CHECK, REASON};
        one(match (check, missing) {
            (Check::Role, true) => key!(ACCESS_DENIED_TOTAL, CHECK => "role", REASON => "missing"),
            (Check::Role, false) => {
                key!(ACCESS_DENIED_TOTAL, CHECK => "role", REASON => "insufficient_scope")
            }
            (Check::Scope, true) => {
                key!(ACCESS_DENIED_TOTAL, CHECK => "scope", REASON => "missing")
            }
            (Check::Scope, false) => {
                key!(ACCESS_DENIED_TOTAL, CHECK => "scope", REASON => "insufficient_scope")
            }
        });
    }
    #[cfg(not(feature = "metrics"))]
    let _ = missing;
}

/// Roles: any non-empty name without control characters. Role names never reach a header
/// (the challenge names scopes only), so spaces ("Domain Admins") and non-ASCII are fine.
pub(crate) fn is_role_name(value: &str) -> bool {
    !value.is_empty() && !value.chars().any(char::is_control)
}

macro_rules! require_layer {
    (
        $(#[$layer_doc:meta])* $layer:ident,
        $(#[$service_doc:meta])* $service:ident,
        $valid:path, $check:expr, $has:expr
    ) => {
        $(#[$layer_doc])*
        #[must_use]
        pub struct $layer<R = DefaultRejection> {
            requirement: Arc<Requirement>,
            on_rejection: R,
        }

        impl $layer {
            /// Requires at least one of `values`.
            ///
            /// # Errors
            ///
            /// [`ConfigError::InvalidSetting`] for an empty list, or a value that is not valid
            /// here: a scope must be an RFC 6749 scope token (printable ASCII without space,
            /// `"` or `\`); a role must be non-empty without control characters.
            pub fn any<I>(values: I) -> Result<Self, ConfigError>
            where
                I: IntoIterator,
                I::Item: AsRef<str>,
            {
                Self::build(values, Match::Any)
            }

            /// Requires every one of `values`.
            ///
            /// # Errors
            ///
            /// As [`Self::any`].
            pub fn all<I>(values: I) -> Result<Self, ConfigError>
            where
                I: IntoIterator,
                I::Item: AsRef<str>,
            {
                Self::build(values, Match::All)
            }
        }

        impl<R> $layer<R> {
            /// The `realm` of the `WWW-Authenticate` challenge (default: none).
            ///
            /// # Errors
            ///
            /// [`ConfigError::InvalidSetting`] unless `realm` is printable ASCII without `"` and `\`.
            pub fn realm(mut self, realm: &str) -> Result<Self, ConfigError> {
                Arc::make_mut(&mut self.requirement).responder.set_realm(realm)?;
                Ok(self)
            }

            /// The values listed when the layer was built, in order.
            pub fn required(&self) -> impl Iterator<Item = &str> + '_ {
                self.requirement.listed.iter().map(|value| &**value)
            }

            /// Whether every listed value is required ([`all`](Self::all)), rather than any one.
            #[must_use]
            pub fn requires_all(&self) -> bool {
                self.requirement.mode == Match::All
            }

            /// Replaces the rejection responses (see [`OnRejection`]).
            pub fn on_rejection<R2: OnRejection>(self, on_rejection: R2) -> $layer<R2> {
                $layer { requirement: self.requirement, on_rejection }
            }
        }

        impl<R: Clone> Clone for $layer<R> {
            fn clone(&self) -> Self {
                Self { requirement: Arc::clone(&self.requirement), on_rejection: self.on_rejection.clone() }
            }
        }

        impl<R> fmt::Debug for $layer<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($layer))
                    .field("mode", &self.requirement.mode)
                    .field("required", &self.requirement.listed)
                    .finish_non_exhaustive()
            }
        }

        impl<S, R: Clone> Layer<S> for $layer<R> {
            type Service = $service<S, R>;

            fn layer(&self, inner: S) -> Self::Service {
                $service {
                    inner,
                    requirement: Arc::clone(&self.requirement),
                    on_rejection: self.on_rejection.clone(),
                }
            }
        }

        $(#[$service_doc])*
        pub struct $service<S, R = DefaultRejection> {
            inner: S,
            requirement: Arc<Requirement>,
            on_rejection: R,
        }

        impl<S> $service<S> {
            #[doc = concat!(
                "Wraps `inner`, requiring at least one of `values` (as [`",
                stringify!($layer), "::any`]).\n\n# Errors\n\nAs [`", stringify!($layer), "::any`]."
            )]
            pub fn any<I>(inner: S, values: I) -> Result<Self, ConfigError>
            where
                I: IntoIterator,
                I::Item: AsRef<str>,
            {
                Ok($layer::any(values)?.layer(inner))
            }

            #[doc = concat!(
                "Wraps `inner`, requiring every one of `values` (as [`",
                stringify!($layer), "::all`]).\n\n# Errors\n\nAs [`", stringify!($layer), "::any`]."
            )]
            pub fn all<I>(inner: S, values: I) -> Result<Self, ConfigError>
            where
                I: IntoIterator,
                I::Item: AsRef<str>,
            {
                Ok($layer::all(values)?.layer(inner))
            }
        }

        impl<S, R> $service<S, R> {
            inner_service_accessors!();
        }

        impl<S: Clone, R: Clone> Clone for $service<S, R> {
            fn clone(&self) -> Self {
                Self {
                    inner: self.inner.clone(),
                    requirement: Arc::clone(&self.requirement),
                    on_rejection: self.on_rejection.clone(),
                }
            }
        }

        impl<S: fmt::Debug, R> fmt::Debug for $service<S, R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($service))
                    .field("inner", &self.inner)
                    .field("required", &self.requirement.listed)
                    .finish_non_exhaustive()
            }
        }

        impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for $service<S, R>
        where
            S: Service<Request<ReqBody>, Response = Response<ResBody>>,
            R: OnRejection,
        {
            type Response = Response<ResponseBody<ResBody>>;
            type Error = S::Error;
            type Future = ResponseFuture<S::Future, ResBody>;

            fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                self.inner.poll_ready(cx)
            }

            fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
                match self.requirement.check(&request, $has) {
                    Ok(()) => ResponseFuture::inner(self.inner.call(request)),
                    Err(error) => {
                        access_denied($check, error, &self.requirement.listed);
                        let response = self
                            .requirement
                            .responder
                            .hooked(&request, error, &self.on_rejection);
                        ResponseFuture::reject(response.map(ResponseBody::rejection))
                    }
                }
            }
        }
    };
}

require_layer!(
    /// Applies [`RequireScope`]: the token's scopes must include any one, or all, of a list.
    /// A shortfall is 403 `insufficient_scope` with the listed scopes in the challenge's
    /// `scope` attribute (RFC 6750 section 3). With `any`, the attribute lists every
    /// alternative: RFC 6750 has no way to say "one of".
    RequireScopeLayer,
    /// Checks the scopes of the request's [`Claims`]; see [`RequireScopeLayer`].
    RequireScope,
    is_scope_token,
    Check::Scope,
    |claims: &Claims, scope: &str| claims.has_scope(scope)
);

require_layer!(
    /// Applies [`RequireRole`]: the token's roles must include any one, or all, of a list,
    /// optionally through a [`RoleHierarchy`]. A shortfall is 403 `insufficient_scope`; the
    /// challenge names no `scope`, since roles are not OAuth scopes a client could request.
    RequireRoleLayer,
    /// Checks the roles of the request's [`Claims`]; see [`RequireRoleLayer`].
    RequireRole,
    is_role_name,
    Check::Role,
    |claims: &Claims, role: &str| claims.has_role(role)
);

impl RequireScopeLayer {
    fn build<I>(values: I, mode: Match) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut requirement = Requirement::new(values, mode, is_scope_token)?;
        let scope = requirement.listed.join(" ");
        requirement.responder.set_scope(scope);
        Ok(Self {
            requirement: Arc::new(requirement),
            on_rejection: DefaultRejection,
        })
    }
}

impl RequireRoleLayer {
    fn build<I>(values: I, mode: Match) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let requirement = Requirement::new(values, mode, is_role_name)?;
        Ok(Self {
            requirement: Arc::new(requirement),
            on_rejection: DefaultRejection,
        })
    }
}

impl<R> RequireRoleLayer<R> {
    /// Lets roles imply others: a required role is also satisfied by every role that implies
    /// it, directly or through others. Resolved once, here.
    pub fn hierarchy(mut self, hierarchy: &RoleHierarchy) -> Self {
        let requirement = Arc::make_mut(&mut self.requirement);
        requirement.satisfied_by = requirement
            .listed
            .iter()
            .map(|role| {
                hierarchy
                    .satisfying(role)
                    .into_iter()
                    .map(Box::from)
                    .collect()
            })
            .collect();
        self
    }
}

/// Which roles imply which: `admin` implies `moderator` implies `user`, say. Cycles are allowed
/// (the roles on a cycle imply each other).
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct RoleHierarchy {
    implies: HashMap<String, Vec<String>>,
}

impl RoleHierarchy {
    /// No role implies another.
    pub fn new() -> Self {
        Self::default()
    }

    /// `role` implies each of `implied` (and, transitively, whatever they imply).
    pub fn grant<I>(mut self, role: &str, implied: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let entry = self.implies.entry(role.to_owned()).or_default();
        entry.extend(implied.into_iter().map(|r| r.as_ref().to_owned()));
        self
    }

    /// `role` and every role that implies it.
    fn satisfying(&self, role: &str) -> Vec<String> {
        let mut found: HashSet<&str> = HashSet::from([role]);
        let mut order = vec![role.to_owned()];
        let mut grew = true;
        while grew {
            grew = false;
            for (holder, implied) in &self.implies {
                if !found.contains(holder.as_str())
                    && implied.iter().any(|r| found.contains(r.as_str()))
                {
                    found.insert(holder);
                    order.push(holder.clone());
                    grew = true;
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchies_resolve_transitively_and_survive_cycles() {
        let roles = RoleHierarchy::new()
            .grant("admin", ["moderator"])
            .grant("moderator", ["user"])
            .grant("auditor", ["reader"]);
        let mut user = roles.satisfying("user");
        user.sort();
        assert_eq!(user, ["admin", "moderator", "user"]);
        assert_eq!(roles.satisfying("admin"), ["admin"]);
        assert_eq!(roles.satisfying("reader").len(), 2);
        let cycle = RoleHierarchy::new().grant("a", ["b"]).grant("b", ["a"]);
        let mut a = cycle.satisfying("a");
        a.sort();
        assert_eq!(a, ["a", "b"]);
    }

    #[test]
    fn requirements_are_validated() {
        assert!(RequireScopeLayer::any(Vec::<&str>::new()).is_err());
        assert!(RequireScopeLayer::all(["items:read", "a b"]).is_err());
        assert!(RequireScopeLayer::all(["a\"b"]).is_err());
        assert!(RequireRoleLayer::any(["Domain Admins", "caf\u{e9}"]).is_ok());
        assert!(RequireRoleLayer::any(["line\nbreak"]).is_err());
        assert!(RequireRoleLayer::any([""]).is_err());
        assert!(
            RequireRoleLayer::any(["admin"])
                .unwrap()
                .realm("x\"y")
                .is_err()
        );
        assert!(RequireScopeLayer::all(["items:read", "items:write"]).is_ok());
    }

    #[test]
    fn any_and_all() {
        let has = |set: &'static [&'static str]| move |v: &str| set.contains(&v);
        let any = Requirement::new(["a", "b"], Match::Any, is_scope_token).unwrap();
        let all = Requirement::new(["a", "b"], Match::All, is_scope_token).unwrap();
        assert!(any.is_met(has(&["b"])));
        assert!(!any.is_met(has(&["c"])));
        assert!(all.is_met(has(&["b", "a"])));
        assert!(!all.is_met(has(&["a"])));
    }
}
