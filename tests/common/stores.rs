//! Fake stores shared by the suites: a revocation store whose answers the test scripts, and a
//! wrapper that makes any memory store answer like a network store (after a turn of the
//! runtime).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
#[cfg(feature = "rate-limit")]
use tower_jwt_auth::ratelimit::{Action, Decision, LimiterStore, LoginKey};
use tower_jwt_auth::revocation::{RevocationQuery, RevocationStore};
use tower_jwt_auth::store::{StoreError, StoreFuture};

/// What a revocation store was last asked: `iss`, `jti`, `sid`, `sub`, `iat`.
pub type Asked = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
);

/// A revocation store whose answers the test scripts: at once or after the test releases them,
/// an error or a verdict; it counts the questions and remembers the last one. Revoking is
/// accepted and forgotten.
#[derive(Default)]
pub struct ScriptedRevocation {
    pub asks: AtomicUsize,
    pub last: Mutex<Option<Asked>>,
    answer: Mutex<Option<Result<bool, &'static str>>>,
    later: Mutex<Option<oneshot::Receiver<()>>>,
}

impl ScriptedRevocation {
    /// Answers `answer` (`Err`: a store error with that message) at once.
    pub fn answering(answer: Result<bool, &'static str>) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(Some(answer)),
            ..Self::default()
        })
    }

    /// Answers only once the returned sender fires (or is dropped).
    pub fn answering_later(answer: Result<bool, &'static str>) -> (Arc<Self>, oneshot::Sender<()>) {
        let (release, wait) = oneshot::channel();
        let store = Self::answering(answer);
        *store.later.lock().unwrap() = Some(wait);
        (store, release)
    }
}

impl RevocationStore for ScriptedRevocation {
    fn is_revoked(&self, token: &RevocationQuery<'_>) -> StoreFuture<bool> {
        self.asks.fetch_add(1, Ordering::SeqCst);
        *self.last.lock().unwrap() = Some((
            token.get_issuer().to_owned(),
            token.get_token_id().map(str::to_owned),
            token.get_session_id().map(str::to_owned),
            token.get_subject().map(str::to_owned),
            token.get_issued_at(),
        ));
        let answer = self
            .answer
            .lock()
            .unwrap()
            .unwrap()
            .map_err(StoreError::new);
        match self.later.lock().unwrap().take() {
            None => StoreFuture::ready(answer),
            Some(wait) => StoreFuture::boxed(async move {
                let _ = wait.await;
                answer
            }),
        }
    }

    fn revoke_token(&self, _: &str, _: &str, _: u64) -> StoreFuture<()> {
        StoreFuture::ready(Ok(()))
    }

    fn revoke_session(&self, _: &str, _: &str, _: u64) -> StoreFuture<()> {
        StoreFuture::ready(Ok(()))
    }

    fn revoke_subject_before(&self, _: &str, _: &str, _: u64, _: u64) -> StoreFuture<()> {
        StoreFuture::ready(Ok(()))
    }
}

/// A store that answers like a network store: the wrapped store does its work only when the
/// answer is polled, after a turn of the runtime. So the layers' futures really wait for it,
/// and an answer nobody polls (a refund dropped in `drop`) never happens.
pub struct Later<S>(Arc<S>);

impl<S> Later<S> {
    pub fn new(store: S) -> Self {
        Self(Arc::new(store))
    }

    /// `call` on the wrapped store, once the future is polled and has yielded once.
    fn later<T, F>(&self, call: impl FnOnce(&S) -> F + Send + 'static) -> StoreFuture<T>
    where
        S: Send + Sync + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send,
        T: Send + 'static,
    {
        let store = Arc::clone(&self.0);
        StoreFuture::boxed(async move {
            tokio::task::yield_now().await;
            call(&store).await
        })
    }
}

impl<S: RevocationStore> RevocationStore for Later<S> {
    fn is_revoked(&self, token: &RevocationQuery<'_>) -> StoreFuture<bool> {
        let issuer = token.get_issuer().to_owned();
        let jti = token.get_token_id().map(str::to_owned);
        let sid = token.get_session_id().map(str::to_owned);
        let sub = token.get_subject().map(str::to_owned);
        let iat = token.get_issued_at();
        self.later(move |store| {
            let mut query = RevocationQuery::new(&issuer);
            if let Some(jti) = &jti {
                query = query.token_id(jti);
            }
            if let Some(sid) = &sid {
                query = query.session_id(sid);
            }
            if let Some(sub) = &sub {
                query = query.subject(sub);
            }
            if let Some(iat) = iat {
                query = query.issued_at(iat);
            }
            store.is_revoked(&query)
        })
    }
    fn revoke_token(&self, issuer: &str, jti: &str, until: u64) -> StoreFuture<()> {
        let (issuer, jti) = (issuer.to_owned(), jti.to_owned());
        self.later(move |store| store.revoke_token(&issuer, &jti, until))
    }
    fn revoke_session(&self, issuer: &str, sid: &str, until: u64) -> StoreFuture<()> {
        let (issuer, sid) = (issuer.to_owned(), sid.to_owned());
        self.later(move |store| store.revoke_session(&issuer, &sid, until))
    }
    fn revoke_subject_before(
        &self,
        issuer: &str,
        sub: &str,
        at: u64,
        until: u64,
    ) -> StoreFuture<()> {
        let (issuer, sub) = (issuer.to_owned(), sub.to_owned());
        self.later(move |store| store.revoke_subject_before(&issuer, &sub, at, until))
    }
}

/// A `LoginKey` the deferred call can own.
#[cfg(feature = "rate-limit")]
fn owned(key: &LoginKey<'_>) -> (std::net::IpAddr, Option<String>) {
    (key.client, key.username.map(str::to_owned))
}

#[cfg(feature = "rate-limit")]
fn key((client, username): &(std::net::IpAddr, Option<String>)) -> LoginKey<'_> {
    LoginKey {
        client: *client,
        username: username.as_deref(),
        action: Action::Login,
    }
}

#[cfg(feature = "rate-limit")]
impl<S: LimiterStore> LimiterStore for Later<S> {
    fn check(&self, login: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        let login = owned(login);
        self.later(move |store| store.check(&key(&login), now_ms))
    }

    fn attempt(&self, login: &LoginKey<'_>, now_ms: u64) -> StoreFuture<Decision> {
        let login = owned(login);
        self.later(move |store| store.attempt(&key(&login), now_ms))
    }

    fn succeeded(&self, login: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        let login = owned(login);
        self.later(move |store| store.succeeded(&key(&login), now_ms))
    }

    fn refund(&self, login: &LoginKey<'_>, now_ms: u64) -> StoreFuture<()> {
        let login = owned(login);
        self.later(move |store| store.refund(&key(&login), now_ms))
    }
}
