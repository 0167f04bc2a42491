//! One behaviour suite for every store backend. Each trait's contract is written once, as a
//! function over `&dyn Trait`, and run against the memory stores, the Redis stores (a
//! `redis-server` of the test's own), SQLite (a file of the test's own) and PostgreSQL (a
//! cluster of the test's own): expiry, caps, reuse detection, races, "not before", and the
//! limiter's decisions step by step against `MemoryLimiterStore`.
//!
//! A backend whose server is not installed says `SKIPPED` on stderr and returns (`.ci/run`
//! installs them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_jwt_auth::ratelimit::{
    Action, Decision, LimiterStore, LoginKey, LoginLimits, MemoryLimiterStore,
};
use tower_jwt_auth::revocation::{MemoryRevocationStore, RevocationQuery, RevocationStore};
use tower_jwt_auth::router::{
    AccountToken, Changed, Created, Identity, Issued, Linked, MemoryOneTimeStore,
    MemoryRefreshStore, MemoryUserStore, NewUser, OneTimeStore, REMEMBERED_ROTATIONS,
    RefreshSession, RefreshStore, Retry, Rotation, SealedToken, TokenHash, TokenPurpose, Unlinked,
    UserChange, UserStore,
};

pub(crate) const ISSUER: &str = "https://issuer.test";

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn session(id: &str, user: &str, created_at: u64, expires_at: u64) -> RefreshSession {
    RefreshSession {
        session_id: id.to_owned(),
        user_id: user.to_owned(),
        client_id: "web".to_owned(),
        scopes: vec!["items:read".to_owned()],
        created_at,
        expires_at,
    }
}

// ---------------------------------------------------------------------------------------------
// RefreshStore
// ---------------------------------------------------------------------------------------------

/// Creation, lookup, idle and absolute expiry, rotation past the remembered bound, reuse
/// detection, revocation by session and by user, the per-user cap, and whole round trips.
pub(crate) async fn refresh_store(store: &dyn RefreshStore) {
    let now = unix_now();
    let h = |n: usize| TokenHash::of(&n.to_string());

    store
        .create(session("s", "u", now, now + 3_600), h(0), now + 600)
        .await
        .unwrap();
    // Taken ids and tokens are refused.
    assert!(
        store
            .create(session("s", "u", now, now + 3_600), h(900), now + 600)
            .await
            .is_err()
    );
    assert!(
        store
            .create(session("t", "u", now, now + 3_600), h(0), now + 600)
            .await
            .is_err()
    );
    assert_eq!(
        store.get(&h(0), now).await.unwrap().unwrap().session_id,
        "s"
    );
    assert_eq!(
        store.get(&h(0), now + 600).await.unwrap(),
        None,
        "idle expiry"
    );
    assert_eq!(
        store
            .rotate(&h(0), h(901), now + 600, now + 1_200, None)
            .await
            .unwrap(),
        Rotation::Invalid,
        "an idle-expired family does not rotate"
    );

    // Rotate past the remembered bound: the oldest rotated tokens are forgotten.
    let count = REMEMBERED_ROTATIONS + 3;
    for i in 0..count {
        let rotated = store
            .rotate(&h(i), h(i + 1), now, now + 600, None)
            .await
            .unwrap();
        assert!(matches!(rotated, Rotation::Rotated(_)), "rotation {i}");
    }
    assert_eq!(
        store.get(&h(count - 1), now).await.unwrap(),
        None,
        "no longer current"
    );
    assert!(store.get(&h(count), now).await.unwrap().is_some());
    assert_eq!(
        store
            .find_session(&h(count - 1))
            .await
            .unwrap()
            .unwrap()
            .session_id,
        "s"
    );
    // A new family with a token some family rotated away from is refused.
    assert!(
        store
            .create(
                session("dup", "u", now, now + 3_600),
                h(count - 1),
                now + 600
            )
            .await
            .is_err()
    );
    // A rotation to a token some family already holds is refused, and changes nothing.
    assert!(
        store
            .rotate(&h(count), h(count - 1), now, now + 600, None)
            .await
            .is_err()
    );
    assert!(store.get(&h(count), now).await.unwrap().is_some());
    // Forgotten: refused without ending the family.
    assert_eq!(
        store
            .rotate(&h(0), h(1_000), now, now + 600, None)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert_eq!(store.find_session(&h(0)).await.unwrap(), None);
    assert!(store.get(&h(count), now).await.unwrap().is_some());
    // Remembered: a replay, which ends the family.
    let oldest = h(count - REMEMBERED_ROTATIONS);
    let reused = store
        .rotate(&oldest, h(1_001), now, now + 600, None)
        .await
        .unwrap();
    assert!(matches!(reused, Rotation::Reused(s) if s.session_id == "s"));
    assert_eq!(
        store
            .rotate(&h(count), h(1_002), now, now + 600, None)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert_eq!(store.find_session(&h(count)).await.unwrap(), None);
    assert_eq!(store.revoke_session("s").await.unwrap(), None);

    // The idle expiry never passes the absolute one.
    store
        .create(session("x", "w", now, now + 100), h(1_500), now + 600)
        .await
        .unwrap();
    assert!(store.get(&h(1_500), now + 99).await.unwrap().is_some());
    assert_eq!(store.get(&h(1_500), now + 100).await.unwrap(), None);
    let rotated = store
        .rotate(&h(1_500), h(1_501), now + 50, now + 650, None)
        .await
        .unwrap();
    assert!(matches!(rotated, Rotation::Rotated(_)));
    assert_eq!(
        store.get(&h(1_501), now + 100).await.unwrap(),
        None,
        "absolute expiry"
    );

    // revoke_user ends every family of the user, and returns them; others keep theirs.
    for (sid, user, token) in [("a", "u", 2_000), ("b", "u", 2_001), ("c", "v", 2_002)] {
        store
            .create(session(sid, user, now, now + 3_600), h(token), now + 600)
            .await
            .unwrap();
    }
    assert_eq!(
        store.revoke_session("a").await.unwrap().unwrap().session_id,
        "a"
    );
    assert_eq!(store.get(&h(2_000), now).await.unwrap(), None);
    store
        .create(session("d", "u", now, now + 3_600), h(2_003), now + 600)
        .await
        .unwrap();
    store
        .create(session("e", "u", now, now + 3_600), h(2_004), now + 600)
        .await
        .unwrap();
    // A password change keeps the session that made it.
    let mut ended: Vec<_> = store
        .revoke_user("u", Some("e"))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    ended.sort();
    assert_eq!(
        ended,
        ["b", "d"],
        "all of the user's families but the one kept"
    );
    assert!(store.get(&h(2_004), now).await.unwrap().is_some());
    let ended: Vec<_> = store
        .revoke_user("u", None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(ended, ["e"]);
    assert!(store.revoke_user("u", None).await.unwrap().is_empty());
    assert!(store.get(&h(2_002), now).await.unwrap().is_some());

    // The per-user cap ends the oldest live families first; expired ones go uncounted.
    for (i, created) in [(0, now - 50), (1, now - 40), (2, now - 30), (3, now - 20)] {
        store
            .create(
                session(&format!("cap{i}"), "capped", created, now + 3_600),
                h(4_000 + i),
                if i == 1 { now + 1 } else { now + 600 },
            )
            .await
            .unwrap();
    }
    let ended: Vec<_> = store
        .end_oldest("capped", 1, now + 5)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.session_id)
        .collect();
    assert_eq!(ended, ["cap0", "cap2"], "cap1 had expired: not counted");
    assert!(store.get(&h(4_003), now + 5).await.unwrap().is_some());
    assert!(
        store
            .end_oldest("capped", 1, now + 5)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.end_oldest("nobody", 0, now).await.unwrap().is_empty());

    // Sessions round-trip whole.
    let full = RefreshSession {
        scopes: vec!["a".to_owned(), "b:c".to_owned()],
        ..session("e", "ü\"{}", now, now + 3_600)
    };
    store
        .create(full.clone(), h(3_000), now + 60)
        .await
        .unwrap();
    assert_eq!(store.get(&h(3_000), now).await.unwrap(), Some(full));
    store.ready(now).await.unwrap();
}

/// Of many concurrent rotations with one token, exactly one rotates; the others find it
/// rotated (a replay), which ends the family.
pub(crate) async fn concurrent_rotations(store: Arc<dyn RefreshStore>) {
    let now = unix_now();
    for round in 0..5 {
        let sid = format!("race{round}");
        let first = TokenHash::of(&format!("race-first-{round}"));
        store
            .create(session(&sid, "racer", now, now + 3_600), first, now + 600)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                let next = TokenHash::of(&format!("race-next-{round}-{i}"));
                tokio::spawn(async move { store.rotate(&first, next, now, now + 600, None).await })
            })
            .collect();
        let mut rotated = 0;
        for task in tasks {
            if let Rotation::Rotated(_) = task.await.unwrap().unwrap() {
                rotated += 1;
            }
        }
        assert_eq!(rotated, 1, "round {round}");
    }
}

/// A rotation that keeps a retry: the token it replaced, presented again before the deadline,
/// is a retry (nothing changes, the sealed successor comes back); the token before it, or the
/// same one after the deadline, or after a rotation that kept no retry, is a replay.
pub(crate) async fn refresh_retries(store: &dyn RefreshStore) {
    let now = unix_now();
    let h = |name: &str| TokenHash::of(name);
    let sealed = |n: u8| SealedToken::from_bytes([n; 32]);
    let retry = |n: u8, until: u64| {
        Some(Retry {
            sealed: sealed(n),
            until,
        })
    };
    store
        .create(session("g", "u", now, now + 3_600), h("g0"), now + 600)
        .await
        .unwrap();
    let rotated = store.rotate(&h("g0"), h("g1"), now, now + 600, retry(1, now + 30));
    assert!(matches!(rotated.await.unwrap(), Rotation::Rotated(_)));
    // A retry: the sealed successor, and nothing changed (another retry is a retry too).
    for at in [now, now + 29] {
        match store
            .rotate(&h("g0"), h("g-other"), at, at + 600, retry(9, at + 30))
            .await
            .unwrap()
        {
            Rotation::Retried(retried, kept) => {
                assert_eq!(retried.session_id, "g");
                assert_eq!(kept, sealed(1), "the first rotation's successor");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        store.get(&h("g1"), now).await.unwrap().is_some(),
        "still current"
    );
    assert!(
        store.get(&h("g-other"), now).await.unwrap().is_none(),
        "never stored"
    );
    // The successor rotates as usual; then the token before it is a replay.
    let rotated = store.rotate(&h("g1"), h("g2"), now + 1, now + 600, retry(2, now + 31));
    assert!(matches!(rotated.await.unwrap(), Rotation::Rotated(_)));
    let replay = store.rotate(&h("g0"), h("g3"), now + 2, now + 600, retry(3, now + 32));
    assert!(matches!(replay.await.unwrap(), Rotation::Reused(_)));
    assert!(
        store.get(&h("g2"), now + 2).await.unwrap().is_none(),
        "family ended"
    );

    // Past the deadline, a replay.
    store
        .create(session("late", "u", now, now + 3_600), h("l0"), now + 600)
        .await
        .unwrap();
    let rotated = store.rotate(&h("l0"), h("l1"), now, now + 600, retry(1, now + 30));
    assert!(matches!(rotated.await.unwrap(), Rotation::Rotated(_)));
    let late = store.rotate(&h("l0"), h("l2"), now + 30, now + 600, retry(2, now + 60));
    assert!(matches!(late.await.unwrap(), Rotation::Reused(_)));

    // A rotation without a retry forgets the one before it.
    store
        .create(session("none", "u", now, now + 3_600), h("n0"), now + 600)
        .await
        .unwrap();
    let rotated = store.rotate(&h("n0"), h("n1"), now, now + 600, retry(1, now + 30));
    assert!(matches!(rotated.await.unwrap(), Rotation::Rotated(_)));
    let rotated = store.rotate(&h("n1"), h("n2"), now, now + 600, None);
    assert!(matches!(rotated.await.unwrap(), Rotation::Rotated(_)));
    let replay = store.rotate(&h("n1"), h("n3"), now, now + 600, retry(3, now + 30));
    assert!(matches!(replay.await.unwrap(), Rotation::Reused(_)));

    // An expired family retries nothing.
    store
        .create(session("gone", "u", now, now + 10), h("e0"), now + 600)
        .await
        .unwrap();
    let rotated = store.rotate(&h("e0"), h("e1"), now, now + 600, retry(1, now + 300));
    assert!(matches!(rotated.await.unwrap(), Rotation::Rotated(_)));
    let expired = store.rotate(&h("e0"), h("e2"), now + 10, now + 600, retry(2, now + 300));
    assert_eq!(expired.await.unwrap(), Rotation::Invalid);
}

/// Of many concurrent rotations with one token that keep a retry, one rotates and every other
/// is that rotation's retry: one successor between them, the family alive.
pub(crate) async fn concurrent_retries(store: Arc<dyn RefreshStore>) {
    let now = unix_now();
    for round in 0..5u8 {
        let sid = format!("retry{round}");
        let first = TokenHash::of(&format!("retry-first-{round}"));
        store
            .create(session(&sid, "racer", now, now + 3_600), first, now + 600)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let store = Arc::clone(&store);
                let next = TokenHash::of(&format!("retry-next-{round}-{i}"));
                let retry = Retry {
                    sealed: SealedToken::from_bytes([i; 32]),
                    until: now + 30,
                };
                tokio::spawn(async move {
                    let rotation = store.rotate(&first, next, now, now + 600, Some(retry));
                    (i, rotation.await.unwrap())
                })
            })
            .collect();
        let (mut winners, mut retried) = (Vec::new(), Vec::new());
        for task in tasks {
            match task.await.unwrap() {
                (i, Rotation::Rotated(_)) => winners.push(i),
                (_, Rotation::Retried(_, sealed)) => retried.push(sealed),
                (_, other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}");
        let winner = SealedToken::from_bytes([winners[0]; 32]);
        assert_eq!(
            retried,
            vec![winner; 7],
            "round {round}: the winner's successor"
        );
        let current = TokenHash::of(&format!("retry-next-{round}-{}", winners[0]));
        assert!(store.get(&current, now).await.unwrap().is_some());
    }
}

// ---------------------------------------------------------------------------------------------
// RevocationStore
// ---------------------------------------------------------------------------------------------

/// Tokens and sessions per issuer, a subject's "not before" (never moved back), and entries
/// that no longer matter.
pub(crate) async fn revocation_store(store: &dyn RevocationStore) {
    let now = unix_now();
    let revoked =
        |query: RevocationQuery<'static>| async move { store.is_revoked(&query).await.unwrap() };
    let other = "https://other.test";

    assert!(!revoked(RevocationQuery::new(ISSUER).token_id("j1")).await);
    store.revoke_token(ISSUER, "j1", now + 600).await.unwrap();
    assert!(revoked(RevocationQuery::new(ISSUER).token_id("j1")).await);
    assert!(!revoked(RevocationQuery::new(other).token_id("j1")).await);
    assert!(!revoked(RevocationQuery::new(ISSUER).token_id("j2")).await);
    assert!(!revoked(RevocationQuery::new(ISSUER).session_id("j1")).await);

    store.revoke_session(ISSUER, "s1", now + 600).await.unwrap();
    assert!(revoked(RevocationQuery::new(ISSUER).token_id("j9").session_id("s1")).await);
    assert!(!revoked(RevocationQuery::new(other).session_id("s1")).await);

    store
        .revoke_subject_before(ISSUER, "alice", now - 10, now + 600)
        .await
        .unwrap();
    let alice = |iat: u64| RevocationQuery::new(ISSUER).subject("alice").issued_at(iat);
    assert!(revoked(alice(now - 11)).await);
    assert!(
        !revoked(alice(now - 10)).await,
        "issued at the instant: kept"
    );
    assert!(
        revoked(RevocationQuery::new(ISSUER).subject("alice")).await,
        "no iat: revoked"
    );
    assert!(
        !revoked(
            RevocationQuery::new(ISSUER)
                .subject("bob")
                .issued_at(now - 11)
        )
        .await
    );
    // An earlier instant does not move it back; a later one moves it on.
    store
        .revoke_subject_before(ISSUER, "alice", now - 100, now + 600)
        .await
        .unwrap();
    assert!(revoked(alice(now - 11)).await);
    store
        .revoke_subject_before(ISSUER, "alice", now, now + 600)
        .await
        .unwrap();
    assert!(revoked(alice(now - 5)).await);

    // An entry that stopped mattering is not kept.
    store.revoke_token(ISSUER, "old", now - 1).await.unwrap();
    assert!(!revoked(RevocationQuery::new(ISSUER).token_id("old")).await);
}

// ---------------------------------------------------------------------------------------------
// UserStore
// ---------------------------------------------------------------------------------------------

pub(crate) fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.to_owned(),
        email: Some(format!("{name}@example.test")),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        roles: vec!["user".to_owned()],
        scopes: vec!["items:read".to_owned(), "items:write".to_owned()],
    }
}

/// Normalised, unique names (look-alikes included), the legacy form kept, round trips,
/// updates of existing users only, and listing by name.
pub(crate) async fn user_store(store: &dyn UserStore) {
    let Created::Created(alice) = store.create(new_user("Alice")).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(alice.username, "alice");
    assert!(!alice.disabled);
    assert_eq!(
        store.create(new_user(" ALICE ")).await.unwrap(),
        Created::Taken
    );
    assert_eq!(
        store.create(new_user("a b")).await.unwrap(),
        Created::InvalidUsername
    );
    assert_eq!(
        store.find_by_username("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.find_by_id(&alice.id).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.find_by_username("bob").await.unwrap(), None);
    assert_eq!(store.find_by_id("no-such-id").await.unwrap(), None);

    // Look-alikes of an existing name are taken.
    assert!(matches!(
        store.create(new_user("admin")).await.unwrap(),
        Created::Created(_)
    ));
    for look_alike in ["adrnin", "ADRNIN", "\u{430}dmin", "ad\u{200b}min"] {
        assert_eq!(
            store.create(new_user(look_alike)).await.unwrap(),
            Created::Taken,
            "{look_alike:?}"
        );
    }
    // The form earlier versions stored is kept as it is; its current spelling is taken.
    let Created::Created(legacy) = store.create(new_user("straße")).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(legacy.username, "straße");
    assert_eq!(
        store.create(new_user("strasse")).await.unwrap(),
        Created::Taken
    );

    // Updates apply to existing users only, and stick.
    assert!(
        store
            .update_password_hash(&alice.id, "$argon2id$new".to_owned())
            .await
            .unwrap()
    );
    let change = UserChange {
        disabled: Some(true),
        roles: Some(vec!["admin".to_owned()]),
        scopes: Some(Vec::new()),
        email_verified: None,
    };
    let Changed::Changed(before) = store.update(&alice.id, change.clone(), None).await.unwrap()
    else {
        panic!("changed")
    };
    assert!(!before.disabled && before.roles == ["user"], "{before:?}");
    let changed = store.find_by_id(&alice.id).await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(changed.disabled);
    assert_eq!(changed.roles, ["admin"]);
    assert!(changed.scopes.is_empty());
    let enable = UserChange {
        disabled: Some(false),
        ..UserChange::default()
    };
    store.update(&alice.id, enable, None).await.unwrap();
    let enabled = store.find_by_id(&alice.id).await.unwrap().unwrap();
    assert!(!enabled.disabled);
    assert_eq!(enabled.roles, ["admin"], "fields left None stay");
    assert!(
        !store
            .update_password_hash("no-such-id", String::new())
            .await
            .unwrap()
    );
    assert_eq!(
        store.update("no-such-id", change, None).await.unwrap(),
        Changed::NotFound
    );
    assert_eq!(
        store.delete("no-such-id", None).await.unwrap(),
        Changed::NotFound
    );

    // The last enabled holder of the protected role stays; `admin` (the account) holds
    // `user` only, so alice is the one admin.
    let demote = UserChange {
        roles: Some(vec!["user".to_owned()]),
        ..UserChange::default()
    };
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    for change in [demote.clone(), disable.clone()] {
        assert_eq!(
            store
                .update(&alice.id, change, Some("admin"))
                .await
                .unwrap(),
            Changed::LastWithRole
        );
    }
    assert_eq!(
        store.delete(&alice.id, Some("admin")).await.unwrap(),
        Changed::LastWithRole
    );
    assert_eq!(store.find_by_id(&alice.id).await.unwrap(), Some(enabled));
    // A role whose name holds LIKE wildcards matches only itself.
    let Created::Created(wild) = store.create(new_user("wild")).await.unwrap() else {
        panic!("created")
    };
    let wildcard = UserChange {
        roles: Some(vec!["a_m%n".to_owned(), "ADMIN".to_owned()]),
        ..UserChange::default()
    };
    store.update(&wild.id, wildcard, None).await.unwrap();
    assert_eq!(
        store.delete(&wild.id, Some("a_m%n")).await.unwrap(),
        Changed::LastWithRole,
        "alice's admin is not a_m%n, though the pattern's wildcards would match it"
    );
    assert_eq!(
        store.delete(&alice.id, Some("admin")).await.unwrap(),
        Changed::LastWithRole,
        "roles are compared exactly: ADMIN is not admin"
    );
    // With a second enabled admin, the first may go; then the second is the last.
    let second = UserChange {
        roles: Some(vec!["user".to_owned(), "admin".to_owned()]),
        ..UserChange::default()
    };
    store.update(&wild.id, second, None).await.unwrap();
    assert!(matches!(
        store
            .update(&alice.id, demote, Some("admin"))
            .await
            .unwrap(),
        Changed::Changed(_)
    ));
    assert_eq!(
        store
            .update(&wild.id, disable, Some("admin"))
            .await
            .unwrap(),
        Changed::LastWithRole
    );
    // Deleting frees the name and everything under the id.
    assert!(matches!(
        store.delete(&wild.id, None).await.unwrap(),
        Changed::Changed(user) if user.username == "wild"
    ));
    assert_eq!(store.find_by_id(&wild.id).await.unwrap(), None);
    assert_eq!(store.find_by_username("wild").await.unwrap(), None);
    assert!(matches!(
        store.create(new_user("wild")).await.unwrap(),
        Created::Created(_)
    ));

    // Every user, by name, without an email when none was given.
    let mut plain = new_user("zed");
    plain.email = None;
    let Created::Created(zed) = store.create(plain).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(zed.email, None);
    // Pages in bytewise name order, each after the previous one's last name.
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.page(after.as_deref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.username.clone());
        names.extend(page.into_iter().map(|user| user.username));
    }
    assert_eq!(names, ["admin", "alice", "straße", "wild", "zed"]);
    assert!(store.page(Some("zed"), 10).await.unwrap().is_empty());
    assert!(store.page(None, 0).await.unwrap().is_empty());
}

/// E-mail addresses: unique by their key (ASCII case folded), found by any spelling of it,
/// verified by a change, and freed by deleting the account.
pub(crate) async fn user_emails(store: &dyn UserStore) {
    let Created::Created(ann) = store.create(new_user("ann")).await.unwrap() else {
        panic!("created")
    };
    assert_eq!(ann.email.as_deref(), Some("ann@example.test"));
    assert!(!ann.email_verified);
    let mut same = new_user("anna");
    same.email = Some("ANN@Example.TEST".to_owned());
    assert_eq!(
        store.create(same.clone()).await.unwrap(),
        Created::EmailTaken
    );
    assert_eq!(
        store.find_by_username("anna").await.unwrap(),
        None,
        "nothing of a refused account is kept"
    );
    // Non-ASCII letters are compared as they are: a distinct key.
    let mut accented = new_user("eve");
    accented.email = Some("Ève@example.test".to_owned());
    let Created::Created(eve) = store.create(accented).await.unwrap() else {
        panic!("created")
    };
    for spelling in ["ann@example.test", "Ann@EXAMPLE.test"] {
        assert_eq!(
            store.find_by_email(spelling).await.unwrap().map(|u| u.id),
            Some(ann.id.clone()),
            "{spelling}"
        );
    }
    assert_eq!(store.find_by_email("ève@example.test").await.unwrap(), None);
    assert_eq!(
        store
            .find_by_email("Ève@example.test")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(eve.id)
    );
    assert_eq!(
        store.find_by_email("nobody@example.test").await.unwrap(),
        None
    );
    let verify = UserChange {
        email_verified: Some(true),
        ..UserChange::default()
    };
    let Changed::Changed(before) = store.update(&ann.id, verify, None).await.unwrap() else {
        panic!("changed")
    };
    assert!(!before.email_verified);
    let verified = store.find_by_id(&ann.id).await.unwrap().unwrap();
    assert!(verified.email_verified);
    assert!(verified.public().email_verified);
    assert_eq!(verified.roles, ann.roles, "nothing else changed");
    // Other changes keep the verification.
    let disable = UserChange {
        disabled: Some(true),
        ..UserChange::default()
    };
    store.update(&ann.id, disable, None).await.unwrap();
    assert!(
        store
            .find_by_id(&ann.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    // Deleting the account frees its address.
    store.delete(&ann.id, None).await.unwrap();
    assert_eq!(store.find_by_email("ann@example.test").await.unwrap(), None);
    assert!(matches!(
        store.create(same).await.unwrap(),
        Created::Created(user) if user.username == "anna"
    ));
}

/// One-time account tokens: one live token per account and purpose, replaced only after the
/// minimum interval, found and redeemed only while live and for their purpose, used up once,
/// revoked on demand, and gone with their account.
pub(crate) async fn account_tokens(store: &dyn UserStore) {
    let now = unix_now();
    let Created::Created(user) = store.create(new_user("tok")).await.unwrap() else {
        panic!("created")
    };
    let reset = TokenPurpose::PasswordReset;
    let verify = TokenPurpose::EmailVerification;
    let h = |n: u8| [n; 32];
    let token = |hash: [u8; 32], purpose, issued_at: u64| AccountToken {
        user_id: user.id.clone(),
        purpose,
        hash,
        issued_at,
        expires_at: issued_at + 1_800,
    };
    assert_eq!(
        store
            .issue_token(token(h(1), reset, now), 60)
            .await
            .unwrap(),
        Issued::Issued
    );
    assert_eq!(
        store
            .find_token(reset, &h(1), now)
            .await
            .unwrap()
            .as_deref(),
        Some(user.id.as_str())
    );
    // Looking does not use it up; the wrong purpose, an unknown hash or expiry find nothing.
    assert!(store.find_token(reset, &h(1), now).await.unwrap().is_some());
    assert_eq!(store.find_token(verify, &h(1), now).await.unwrap(), None);
    assert_eq!(store.find_token(reset, &h(9), now).await.unwrap(), None);
    assert_eq!(
        store.find_token(reset, &h(1), now + 1_800).await.unwrap(),
        None
    );
    assert_eq!(store.redeem_token(verify, &h(1), now).await.unwrap(), None);
    // Too soon for another of the same purpose: the first stays; another purpose is separate.
    assert_eq!(
        store
            .issue_token(token(h(2), reset, now + 59), 60)
            .await
            .unwrap(),
        Issued::TooSoon
    );
    assert!(store.find_token(reset, &h(1), now).await.unwrap().is_some());
    assert_eq!(store.find_token(reset, &h(2), now).await.unwrap(), None);
    assert_eq!(
        store
            .issue_token(token(h(3), verify, now), 60)
            .await
            .unwrap(),
        Issued::Issued
    );
    // A newer one, after the interval, replaces the older.
    assert_eq!(
        store
            .issue_token(token(h(2), reset, now + 60), 60)
            .await
            .unwrap(),
        Issued::Issued
    );
    assert_eq!(
        store.find_token(reset, &h(1), now + 60).await.unwrap(),
        None
    );
    assert!(
        store
            .find_token(verify, &h(3), now)
            .await
            .unwrap()
            .is_some()
    );
    // Redeemed once; then it is gone.
    assert_eq!(
        store
            .redeem_token(reset, &h(2), now + 61)
            .await
            .unwrap()
            .as_deref(),
        Some(user.id.as_str())
    );
    assert_eq!(
        store.redeem_token(reset, &h(2), now + 61).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_token(reset, &h(2), now + 61).await.unwrap(),
        None
    );
    // An expired token is not redeemed.
    store
        .issue_token(token(h(4), reset, now + 200), 60)
        .await
        .unwrap();
    assert_eq!(
        store.redeem_token(reset, &h(4), now + 2_000).await.unwrap(),
        None
    );
    // Revoked on demand, for its purpose only.
    store
        .issue_token(token(h(5), reset, now + 400), 60)
        .await
        .unwrap();
    store.revoke_tokens(&user.id, reset).await.unwrap();
    assert_eq!(
        store.find_token(reset, &h(5), now + 400).await.unwrap(),
        None
    );
    assert!(
        store
            .find_token(verify, &h(3), now)
            .await
            .unwrap()
            .is_some()
    );
    store.revoke_tokens(&user.id, reset).await.unwrap();
    // Revoked, a new one may be issued at once.
    assert_eq!(
        store
            .issue_token(token(h(6), reset, now + 401), 60)
            .await
            .unwrap(),
        Issued::Issued
    );
    // No account, no token; deleting the account takes its tokens.
    let mut stray = token(h(7), reset, now);
    stray.user_id = "no-such-id".to_owned();
    assert_eq!(
        store.issue_token(stray, 60).await.unwrap(),
        Issued::NoSuchUser
    );
    assert_eq!(store.find_token(reset, &h(7), now).await.unwrap(), None);
    store.delete(&user.id, None).await.unwrap();
    assert_eq!(store.find_token(verify, &h(3), now).await.unwrap(), None);
    assert_eq!(
        store.find_token(reset, &h(6), now + 401).await.unwrap(),
        None
    );
}

/// Of concurrent redemptions of one token, exactly one gets the account; of concurrent
/// issues within the interval, exactly one is stored.
pub(crate) async fn concurrent_redemptions(store: Arc<dyn UserStore>) {
    let now = unix_now();
    let Created::Created(user) = store.create(new_user("race")).await.unwrap() else {
        panic!("created")
    };
    let issue = |n: u8| {
        let store = Arc::clone(&store);
        let token = AccountToken {
            user_id: user.id.clone(),
            purpose: TokenPurpose::PasswordReset,
            hash: [n; 32],
            issued_at: now,
            expires_at: now + 600,
        };
        tokio::spawn(async move { store.issue_token(token, 60).await.unwrap() })
    };
    let issues: Vec<_> = (1..=8).map(issue).collect();
    let mut stored = Vec::new();
    for (n, task) in (1u8..).zip(issues) {
        if task.await.unwrap() == Issued::Issued {
            stored.push(n);
        }
    }
    assert_eq!(stored.len(), 1, "{stored:?}");
    let hash = [stored[0]; 32];
    let redemptions: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .redeem_token(TokenPurpose::PasswordReset, &hash, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut redeemed = 0;
    for task in redemptions {
        if let Some(id) = task.await.unwrap() {
            assert_eq!(id, user.id);
            redeemed += 1;
        }
    }
    assert_eq!(redeemed, 1);
}

/// Two administrators demoting each other at once: one is refused, one admin is left.
pub(crate) async fn concurrent_demotions(store: Arc<dyn UserStore>) {
    for round in 0..10 {
        let mut ids = Vec::new();
        for name in ["ann", "bob"] {
            let user = NewUser {
                roles: vec!["admin".to_owned()],
                ..new_user(&format!("{name}{round}"))
            };
            let Created::Created(user) = store.create(user).await.unwrap() else {
                panic!("created")
            };
            ids.push(user.id);
        }
        let demote = |id: &String| {
            let (store, id) = (Arc::clone(&store), id.clone());
            let change = UserChange {
                roles: Some(Vec::new()),
                ..UserChange::default()
            };
            tokio::spawn(async move { store.update(&id, change, Some("admin")).await.unwrap() })
        };
        let (a, b) = (demote(&ids[0]), demote(&ids[1]));
        let outcomes = [a.await.unwrap(), b.await.unwrap()];
        let refused = outcomes
            .iter()
            .filter(|o| **o == Changed::LastWithRole)
            .count();
        assert_eq!(refused, 1, "round {round}: {outcomes:?}");
        // Clean up: the admin left goes too, unprotected.
        for id in &ids {
            store.delete(id, None).await.unwrap();
        }
    }
}

/// Of concurrent registrations of one name, or of look-alikes, exactly one is created.
pub(crate) async fn concurrent_registrations(store: Arc<dyn UserStore>) {
    let names = [
        "racer",
        "RACER",
        "r\u{430}cer",
        "racer",
        "Racer",
        "racer",
        "RaCeR",
        "racer",
    ];
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let store = Arc::clone(&store);
            let user = new_user(name);
            tokio::spawn(async move { store.create(user).await.unwrap() })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Created::Created(_) => created += 1,
            Created::Taken
            | Created::InvalidUsername
            | Created::EmailTaken
            | Created::IdentityTaken => {}
        }
    }
    assert_eq!(created, 1);
}

// ---------------------------------------------------------------------------------------------
// External identities (UserStore)
// ---------------------------------------------------------------------------------------------

/// An identity at `provider` (issuer `https://<provider>.test`) with user id `subject`.
pub(crate) fn identity(provider: &str, subject: &str) -> Identity {
    Identity {
        provider: provider.to_owned(),
        issuer: format!("https://{provider}.test"),
        subject: subject.to_owned(),
        email: Some(format!("{subject}@{provider}.test")),
        linked_at: 1_700_000_000,
    }
}

/// An account without a password, as an external sign-in creates it.
pub(crate) fn passwordless(name: &str) -> NewUser {
    NewUser {
        password_hash: String::new(),
        ..new_user(name)
    }
}

/// The providers of `user_id`'s identities, in the order the store lists them.
async fn providers(store: &dyn UserStore, user_id: &str) -> Vec<String> {
    let linked = store.identities(user_id).await.unwrap();
    linked
        .into_iter()
        .map(|identity| identity.provider)
        .collect()
}

/// Accounts created with an identity (atomically: a refusal leaves neither), found by it,
/// identities listed by provider, linked (four outcomes) and unlinked (three outcomes, never
/// the last way into a password-less account), and gone with their account.
pub(crate) async fn identities(store: &dyn UserStore) {
    // Created with its identity, and found by it.
    let google = identity("google", "g-1");
    let Created::Created(gina) = store
        .create_linked(passwordless("Gina"), google.clone())
        .await
        .unwrap()
    else {
        panic!("created")
    };
    assert_eq!(gina.username, "gina");
    assert!(!gina.has_password());
    assert_eq!(
        store.find_by_identity(&google.issuer, "g-1").await.unwrap(),
        Some(gina.clone())
    );
    assert_eq!(
        store.find_by_id(&gina.id).await.unwrap(),
        Some(gina.clone())
    );
    assert_eq!(
        store.identities(&gina.id).await.unwrap(),
        std::slice::from_ref(&google),
        "every field round-trips"
    );
    // Known by issuer and subject together.
    assert_eq!(
        store
            .find_by_identity("https://github.test", "g-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.find_by_identity(&google.issuer, "g-2").await.unwrap(),
        None
    );

    // A linked identity creates no second account (whatever the provider is called here).
    for taken in [
        google.clone(),
        Identity {
            provider: "other".to_owned(),
            ..google.clone()
        },
    ] {
        assert_eq!(
            store
                .create_linked(passwordless("gino"), taken)
                .await
                .unwrap(),
            Created::IdentityTaken
        );
        assert_eq!(
            store.find_by_username("gino").await.unwrap(),
            None,
            "no account is left of a refused create_linked"
        );
    }
    // Name, look-alike and address conflicts are refused as `create` refuses them (the name
    // first), and leave no identity.
    let mut same_address = passwordless("gina2");
    same_address.email = Some("GINA@example.test".to_owned());
    let other_address = |name: &str| NewUser {
        email: Some("other@example.test".to_owned()),
        ..passwordless(name)
    };
    for (user, refusal) in [
        (other_address("GINA"), Created::Taken),
        (other_address("gin\u{430}"), Created::Taken),
        (passwordless("GINA"), Created::Taken),
        (same_address, Created::EmailTaken),
        (passwordless("g na"), Created::InvalidUsername),
    ] {
        let name = user.username.clone();
        assert_eq!(
            store
                .create_linked(user, identity("google", "g-2"))
                .await
                .unwrap(),
            refusal,
            "{name:?}"
        );
        assert_eq!(
            store.find_by_identity(&google.issuer, "g-2").await.unwrap(),
            None,
            "{name:?}: no identity is left of a refused create_linked"
        );
    }
    assert_eq!(
        store.find_by_username("gina2").await.unwrap(),
        None,
        "nothing of the refused account is kept"
    );

    // Linking: to an existing user, one identity per provider, each identity once.
    let github = identity("github", "h-1");
    assert_eq!(
        store.link_identity(&gina.id, github.clone()).await.unwrap(),
        Linked::Linked
    );
    assert_eq!(
        store
            .find_by_identity(&github.issuer, "h-1")
            .await
            .unwrap()
            .map(|user| user.id),
        Some(gina.id.clone())
    );
    assert_eq!(
        store
            .link_identity(&gina.id, identity("google", "g-9"))
            .await
            .unwrap(),
        Linked::ProviderTaken
    );
    assert_eq!(
        store.find_by_identity(&google.issuer, "g-9").await.unwrap(),
        None
    );
    assert_eq!(
        store.link_identity(&gina.id, google.clone()).await.unwrap(),
        Linked::IdentityTaken,
        "linked to this account already (its provider too): the identity is what is taken"
    );
    let Created::Created(pat) = store.create(new_user("pat")).await.unwrap() else {
        panic!("created")
    };
    assert!(pat.has_password());
    assert_eq!(
        store.link_identity(&pat.id, github.clone()).await.unwrap(),
        Linked::IdentityTaken
    );
    let stray = identity("gitlab", "x-1");
    assert_eq!(
        store
            .link_identity("no-such-id", stray.clone())
            .await
            .unwrap(),
        Linked::NoSuchUser
    );
    assert_eq!(
        store.find_by_identity(&stray.issuer, "x-1").await.unwrap(),
        None
    );
    // The refusals changed nothing.
    assert_eq!(
        store.identities(&gina.id).await.unwrap(),
        [github.clone(), google.clone()]
    );
    assert!(store.identities(&pat.id).await.unwrap().is_empty());

    // Listed by provider name, whatever the order of linking; an address may be absent.
    let apple = Identity {
        email: None,
        ..identity("apple", "p-1")
    };
    for linked in [
        identity("google", "p-3"),
        apple.clone(),
        identity("github", "p-2"),
    ] {
        assert_eq!(
            store.link_identity(&pat.id, linked).await.unwrap(),
            Linked::Linked
        );
    }
    assert_eq!(
        providers(store, &pat.id).await,
        ["apple", "github", "google"]
    );
    assert_eq!(store.identities(&pat.id).await.unwrap()[0], apple);

    // Unlinking. An account with a password may lose every identity.
    for provider in ["google", "apple", "github"] {
        let Unlinked::Unlinked(gone) = store.unlink_identity(&pat.id, provider).await.unwrap()
        else {
            panic!("{provider}: unlinked")
        };
        assert_eq!(gone.provider, provider);
        assert_eq!(
            store
                .find_by_identity(&gone.issuer, &gone.subject)
                .await
                .unwrap(),
            None
        );
    }
    assert!(store.identities(&pat.id).await.unwrap().is_empty());
    assert_eq!(
        store.unlink_identity(&pat.id, "google").await.unwrap(),
        Unlinked::NotLinked
    );
    assert_eq!(
        store.unlink_identity("no-such-id", "google").await.unwrap(),
        Unlinked::NotLinked
    );
    // A password-less account keeps its last identity: of two, one goes.
    assert_eq!(
        store.unlink_identity(&gina.id, "apple").await.unwrap(),
        Unlinked::NotLinked
    );
    assert_eq!(
        store.unlink_identity(&gina.id, "github").await.unwrap(),
        Unlinked::Unlinked(github.clone()),
        "answered as it was"
    );
    assert_eq!(
        store.unlink_identity(&gina.id, "google").await.unwrap(),
        Unlinked::LastWayToSignIn
    );
    assert_eq!(
        store.find_by_identity(&google.issuer, "g-1").await.unwrap(),
        Some(gina.clone()),
        "the refused unlink changed nothing"
    );
    assert_eq!(
        store.identities(&gina.id).await.unwrap(),
        std::slice::from_ref(&google)
    );
    let Created::Created(solo) = store
        .create_linked(passwordless("solo"), identity("google", "s-1"))
        .await
        .unwrap()
    else {
        panic!("created")
    };
    assert_eq!(
        store.unlink_identity(&solo.id, "google").await.unwrap(),
        Unlinked::LastWayToSignIn
    );
    assert_eq!(providers(store, &solo.id).await, ["google"]);
    // An unlinked identity may be linked again, to another account.
    assert_eq!(
        store.link_identity(&pat.id, github.clone()).await.unwrap(),
        Linked::Linked
    );
    // Once the account has a password, it may go.
    assert!(
        store
            .update_password_hash(&solo.id, "$argon2id$set".to_owned())
            .await
            .unwrap()
    );
    assert!(matches!(
        store.unlink_identity(&solo.id, "google").await.unwrap(),
        Unlinked::Unlinked(gone) if gone.subject == "s-1"
    ));

    // Deleting an account deletes its identities, which may then be linked again.
    assert!(matches!(
        store.delete(&gina.id, None).await.unwrap(),
        Changed::Changed(_)
    ));
    assert_eq!(
        store.find_by_identity(&google.issuer, "g-1").await.unwrap(),
        None
    );
    assert!(store.identities(&gina.id).await.unwrap().is_empty());
    assert_eq!(
        store.link_identity(&pat.id, google.clone()).await.unwrap(),
        Linked::Linked
    );
    assert_eq!(
        store
            .find_by_identity(&google.issuer, "g-1")
            .await
            .unwrap()
            .map(|user| user.id),
        Some(pat.id.clone())
    );
    assert!(matches!(
        store.delete(&pat.id, None).await.unwrap(),
        Changed::Changed(_)
    ));
    let Created::Created(again) = store
        .create_linked(passwordless("gina"), google.clone())
        .await
        .unwrap()
    else {
        panic!("the name and the identity are free again")
    };
    assert_eq!(store.identities(&again.id).await.unwrap(), [google]);
}

/// Concurrent first sign-ins of one identity create one account; concurrent links of one
/// identity, or of one provider to one account, link one; concurrent unlinks of a
/// password-less account's two identities leave one.
pub(crate) async fn concurrent_identities(store: Arc<dyn UserStore>) {
    const TASKS: usize = 8;
    let issuer = identity("google", "twin").issuer;
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(&store);
            let user = passwordless(&format!("twin{i}"));
            tokio::spawn(async move {
                store
                    .create_linked(user, identity("google", "twin"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut created = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Created::Created(user) => created.push(user),
            Created::IdentityTaken => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(
        store.find_by_identity(&issuer, "twin").await.unwrap(),
        Some(created[0].clone())
    );
    let mut accounts = 0;
    for i in 0..TASKS {
        if let Some(user) = store.find_by_username(&format!("twin{i}")).await.unwrap() {
            assert_eq!(user.id, created[0].id);
            accounts += 1;
        }
    }
    assert_eq!(accounts, 1, "the refused first sign-ins left no account");

    // One identity linked to several accounts at once: one wins.
    let mut users = Vec::new();
    for i in 0..TASKS {
        let Created::Created(user) = store.create(new_user(&format!("link{i}"))).await.unwrap()
        else {
            panic!("created")
        };
        users.push(user.id);
    }
    let tasks: Vec<_> = users
        .iter()
        .map(|id| {
            let (store, id) = (Arc::clone(&store), id.clone());
            tokio::spawn(async move {
                store
                    .link_identity(&id, identity("github", "shared"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let winners: Vec<_> = users
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == Linked::Linked)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Linked::Linked | Linked::IdentityTaken)),
        "{outcomes:?}"
    );
    assert_eq!(
        store
            .find_by_identity(&identity("github", "shared").issuer, "shared")
            .await
            .unwrap()
            .map(|user| user.id),
        Some(winners[0].clone())
    );
    // Several identities of one provider linked to one account at once: one wins.
    let target = users[0].clone();
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (store, id) = (Arc::clone(&store), target.clone());
            tokio::spawn(async move {
                store
                    .link_identity(&id, identity("gitlab", &format!("lab{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let linked = outcomes.iter().filter(|o| **o == Linked::Linked).count();
    assert_eq!(linked, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Linked::Linked | Linked::ProviderTaken)),
        "{outcomes:?}"
    );
    let gitlab = store
        .identities(&target)
        .await
        .unwrap()
        .into_iter()
        .filter(|identity| identity.provider == "gitlab")
        .count();
    assert_eq!(gitlab, 1);

    // A password-less account's two identities unlinked at once, several times each.
    for round in 0..6 {
        let Created::Created(user) = store
            .create_linked(
                passwordless(&format!("pair{round}")),
                identity("google", &format!("pg{round}")),
            )
            .await
            .unwrap()
        else {
            panic!("created")
        };
        assert_eq!(
            store
                .link_identity(&user.id, identity("github", &format!("ph{round}")))
                .await
                .unwrap(),
            Linked::Linked
        );
        let tasks: Vec<_> = (0..TASKS)
            .map(|i| {
                let (store, id) = (Arc::clone(&store), user.id.clone());
                let provider = if i % 2 == 0 { "google" } else { "github" };
                tokio::spawn(async move { store.unlink_identity(&id, provider).await.unwrap() })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let unlinked = outcomes
            .iter()
            .filter(|o| matches!(o, Unlinked::Unlinked(_)))
            .count();
        assert_eq!(unlinked, 1, "round {round}: {outcomes:?}");
        assert_eq!(
            store.identities(&user.id).await.unwrap().len(),
            1,
            "round {round}: {outcomes:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OneTimeStore
// ---------------------------------------------------------------------------------------------

/// Values taken once and only while live, live keys never overwritten, expired keys reusable,
/// and keys told apart by every byte.
pub(crate) async fn one_time(store: &dyn OneTimeStore) {
    let now = unix_now();
    let key = |n: u8| [n; 32];

    assert!(store.put(&key(1), "a".into(), now + 60, now).await.unwrap());
    assert_eq!(
        store.take(&key(1), now + 59).await.unwrap().as_deref(),
        Some("a")
    );
    assert_eq!(
        store.take(&key(1), now + 1).await.unwrap(),
        None,
        "taken once"
    );
    assert_eq!(store.take(&key(2), now).await.unwrap(), None, "never put");

    // Not answered once expired, and used up by the attempt.
    assert!(store.put(&key(3), "c".into(), now + 10, now).await.unwrap());
    assert_eq!(
        store.take(&key(3), now + 10).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(store.take(&key(3), now).await.unwrap(), None, "used up");

    // A live key is refused, its value and expiry unchanged.
    assert!(store.put(&key(4), "d".into(), now + 60, now).await.unwrap());
    assert!(
        !store
            .put(&key(4), "other".into(), now + 600, now + 59)
            .await
            .unwrap()
    );
    assert_eq!(
        store.take(&key(4), now + 59).await.unwrap().as_deref(),
        Some("d")
    );
    assert!(store.put(&key(5), "e".into(), now + 60, now).await.unwrap());
    assert!(
        !store
            .put(&key(5), "other".into(), now + 600, now)
            .await
            .unwrap()
    );
    assert_eq!(
        store.take(&key(5), now + 60).await.unwrap(),
        None,
        "the refused put did not extend the value"
    );

    // An expired key may be used again, without a take in between.
    assert!(store.put(&key(6), "f".into(), now + 5, now).await.unwrap());
    assert!(
        store
            .put(&key(6), "g".into(), now + 100, now + 5)
            .await
            .unwrap()
    );
    assert_eq!(
        store.take(&key(6), now + 6).await.unwrap().as_deref(),
        Some("g")
    );

    // Keys that differ in one byte, or in the order of their digits, are distinct.
    let mut last = key(7);
    last[31] = 8;
    let pairs = [
        (key(0x0a), "0a"),
        (key(0xa0), "a0"),
        (key(7), "7"),
        (last, "last"),
    ];
    for (key, value) in &pairs {
        assert!(
            store
                .put(key, (*value).into(), now + 60, now)
                .await
                .unwrap()
        );
    }
    for (key, value) in &pairs {
        assert_eq!(store.take(key, now).await.unwrap().as_deref(), Some(*value));
    }
}

/// Of concurrent takes of one key, exactly one gets the value; of concurrent puts of one key,
/// exactly one is kept.
pub(crate) async fn concurrent_takes(store: Arc<dyn OneTimeStore>) {
    let now = unix_now();
    for round in 0..10u8 {
        let key = [round; 32];
        let puts: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let value = format!("v{round}-{i}");
                    let kept = store.put(&key, value.clone(), now + 60, now).await.unwrap();
                    kept.then_some(value)
                })
            })
            .collect();
        let mut kept = Vec::new();
        for task in puts {
            kept.extend(task.await.unwrap());
        }
        assert_eq!(kept.len(), 1, "round {round}: {kept:?}");
        let takes: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.take(&key, now).await.unwrap() })
            })
            .collect();
        let mut taken = Vec::new();
        for task in takes {
            taken.extend(task.await.unwrap());
        }
        assert_eq!(taken, kept, "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// LimiterStore
// ---------------------------------------------------------------------------------------------

/// A deterministic generator (splitmix64) for the parity steps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.next() % items.len() as u64).unwrap()]
    }
}

/// Runs `body` on a thread and runtime of its own, failing the test when it does not finish
/// within `limit` (a store that hangs fails the test instead of hanging it).
pub(crate) fn within<F>(limit: Duration, body: F)
where
    F: FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + Send + 'static,
{
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(body());
        }));
        let _ = done.send(outcome);
    });
    match finished.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("did not finish within {limit:?}: a store hung"),
    }
}

/// The policies of the parity run: small numbers, so every rule fires within a few hundred
/// steps.
fn parity_policies() -> Vec<LoginLimits> {
    let s = Duration::from_secs;
    vec![
        LoginLimits::default()
            .per_client_and_username(2, s(1), s(8))
            .unwrap()
            .per_username(4, Duration::from_millis(500), s(4))
            .unwrap()
            .lock_account(7, s(30))
            .unwrap()
            .per_client(5, s(10), 3)
            .unwrap(),
        // Sub-millisecond remainders, which only the same rounding gets right: backoffs from
        // 1000.5 ms and 700.25 ms, 7 failures per 10 s (1428.571 ms apart, a tolerance of
        // 2857 ms, not 2 x 1428).
        LoginLimits::default()
            .per_client_and_username(1, Duration::from_micros(1_000_500), s(9))
            .unwrap()
            .per_username(3, Duration::from_micros(700_250), s(5))
            .unwrap()
            .lock_account(12, s(20))
            .unwrap()
            .per_client(7, s(10), 3)
            .unwrap(),
        // Only the client rules can fire: verifications 4 per 10 s with bursts of 2;
        // registrations 3 per 10 s, bursts of 2.
        LoginLimits::default()
            .per_client_and_username(1_000, s(1), s(1))
            .unwrap()
            .per_username(1_000, s(1), s(1))
            .unwrap()
            .per_client(7, s(10), 3)
            .unwrap()
            .per_client_verifications(4, s(10), 2)
            .unwrap()
            .per_client_registrations(3, s(10), 2)
            .unwrap(),
        LoginLimits::default(),
    ]
}

/// Steps of checks, counted attempts, successes, refunds and clock jumps on `store_for`'s
/// limiter and on a `MemoryLimiterStore` with the same policy, comparing every decision.
/// `store_for(limits, index)` gives a fresh store (or fresh keys) for each policy.
pub(crate) async fn limiter_parity(
    store_for: impl Fn(LoginLimits, usize) -> Arc<dyn LimiterStore>,
) {
    let clients: [IpAddr; 3] = [
        "203.0.113.7".parse().unwrap(),
        "198.51.100.1".parse().unwrap(),
        "2001:db8::1".parse().unwrap(),
    ];
    let usernames = [Some("alice"), Some("bob"), Some("carol:x y|z"), None];
    let advances = [
        0, 0, 1, 7, 143, 250, 999, 1_000, 1_001, 2_000, 4_000, 30_000,
    ];

    let mut seen = BTreeSet::new();
    for (index, limits) in parity_policies().into_iter().enumerate() {
        let memory = MemoryLimiterStore::new(limits.clone());
        let store = store_for(limits, index);
        let mut rng = Rng(0x5eed + index as u64);
        // Stores that expire records on their own clock (Redis) see the test's clock run with
        // theirs (plus jumps): by the time one drops a record, the test is past its expiry.
        let started = Instant::now();
        let base = 1_750_000_000_000u64;
        let mut jumped = 0u64;
        let mut reasons = BTreeMap::new();
        for step in 0..600 {
            jumped += *rng.pick(&advances);
            let now = base + jumped + u64::try_from(started.elapsed().as_millis()).unwrap();
            // One step in eight comes from an instance whose clock is 1.5 s behind.
            let now = if rng.next().is_multiple_of(8) {
                now - 1_500
            } else {
                now
            };
            // One attempt in five is a registration (which never names a username).
            let action = *rng.pick(&[
                Action::Login,
                Action::Login,
                Action::Login,
                Action::Login,
                Action::Registration,
            ]);
            let key = LoginKey {
                client: *rng.pick(&clients),
                username: match action {
                    Action::Registration => None,
                    _ => *rng.pick(&usernames),
                },
                action,
            };
            let (expected, actual) = match rng.next() % 20 {
                0..=5 => (
                    memory.check(&key, now).await.unwrap(),
                    store.check(&key, now).await.unwrap(),
                ),
                6..=16 => (
                    memory.attempt(&key, now).await.unwrap(),
                    store.attempt(&key, now).await.unwrap(),
                ),
                17 => {
                    memory.succeeded(&key, now).await.unwrap();
                    store.succeeded(&key, now).await.unwrap();
                    continue;
                }
                _ => {
                    memory.refund(&key, now).await.unwrap();
                    store.refund(&key, now).await.unwrap();
                    continue;
                }
            };
            assert_eq!(actual, expected, "policy {index}, step {step}: {key:?}");
            let reason = match expected {
                Decision::Allow => "allow",
                Decision::Limit { reason, .. } => reason.as_str(),
            };
            *reasons.entry(reason).or_insert(0) += 1;
        }
        // Five hours of jumps at most: nothing was forgotten (24 h), so the memory store's
        // unswept records and the others' expired ones never differ.
        assert!(jumped < 24 * 3_600_000);
        assert!(reasons.len() >= 2, "policy {index}: {reasons:?}");
        seen.extend(reasons.into_keys());
    }
    // Every rule limited some attempt, and some were allowed.
    assert_eq!(seen.len(), 7, "{seen:?}");
}

/// Concurrent attempts on one username cannot pass its limit: exactly as many are allowed as
/// the policy's free failures per username.
pub(crate) async fn concurrent_attempts(store: Arc<dyn LimiterStore>) {
    let now = 1_750_000_000_000u64;
    let key = |i: u8| LoginKey {
        client: IpAddr::from([198, 51, 100, i]),
        username: Some("victim"),
        action: Action::Login,
    };
    // What one attempt after the other gets.
    let sequential = MemoryLimiterStore::new(concurrent_policy());
    let mut expected = 0;
    for i in 0..40u8 {
        if sequential.attempt(&key(i), now).await.unwrap() == Decision::Allow {
            expected += 1;
        }
    }
    assert!((1..40).contains(&expected), "{expected}");
    let tasks: Vec<_> = (0..40u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.attempt(&key(i), now).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.unwrap() == Decision::Allow {
            allowed += 1;
        }
    }
    assert_eq!(allowed, expected);
}

/// The policy of [`concurrent_attempts`].
pub(crate) fn concurrent_policy() -> LoginLimits {
    LoginLimits::default()
        .per_username(5, Duration::from_secs(60), Duration::from_secs(600))
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The memory backend
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stores_conform() {
    refresh_store(&MemoryRefreshStore::new()).await;
    concurrent_rotations(Arc::new(MemoryRefreshStore::new())).await;
    refresh_retries(&MemoryRefreshStore::new()).await;
    concurrent_retries(Arc::new(MemoryRefreshStore::new())).await;
    revocation_store(&MemoryRevocationStore::new()).await;
    user_store(&MemoryUserStore::new()).await;
    user_emails(&MemoryUserStore::new()).await;
    account_tokens(&MemoryUserStore::new()).await;
    concurrent_redemptions(Arc::new(MemoryUserStore::new())).await;
    concurrent_registrations(Arc::new(MemoryUserStore::new())).await;
    concurrent_demotions(Arc::new(MemoryUserStore::new())).await;
    identities(&MemoryUserStore::new()).await;
    concurrent_identities(Arc::new(MemoryUserStore::new())).await;
    one_time(&MemoryOneTimeStore::new()).await;
    concurrent_takes(Arc::new(MemoryOneTimeStore::new())).await;
    concurrent_attempts(Arc::new(MemoryLimiterStore::new(concurrent_policy()))).await;
    limiter_parity(|limits, _| Arc::new(MemoryLimiterStore::new(limits))).await;
}
