//! [`Verifier::by_issuer`]: one verifier for tokens of several issuers, each with its own keys
//! and policy. The method's docs have the example and the rules.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Inner, Verified, Verifier};
use crate::error::{AuthError, ConfigError, ErrorKind};
use crate::jws;
use crate::pass::{Attempt, Pass};

/// Verifiers by the issuers they accept.
pub(super) struct ByIssuer {
    /// Each accepted issuer with its verifier (always a single-policy one); a verifier that
    /// accepts several issuers appears once per issuer.
    issuers: Box<[(Box<str>, Verifier)]>,
    /// The longest token any of them accepts: longer ones are refused before being read.
    max_len: usize,
}

impl Verifier {
    /// One verifier for tokens of several issuers: each token goes to the verifier that
    /// accepts its `iss`, with that verifier's keys (static or remote), audiences, claim
    /// mapping and every other rule.
    ///
    /// ```
    /// use tower_jwt_auth::{Algorithm, ErrorKind, KeySet, TokenSigner, Verifier};
    ///
    /// let (staff_secret, partner_secret) = ([1u8; 32], [2u8; 32]);
    /// let staff = Verifier::builder(KeySet::hmac(Algorithm::HS256, &staff_secret)?)
    ///     .issuer("https://staff.example").audience("api").build()?;
    /// let partners = Verifier::builder(KeySet::hmac(Algorithm::HS256, &partner_secret)?)
    ///     .issuer("https://partners.example").audience("api").roles_claim("/realm_access/roles")?
    ///     .build()?;
    /// let verifier = Verifier::by_issuer([staff, partners])?;
    ///
    /// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    /// let claims = |iss: &str| serde_json::json!({
    ///     "iss": iss, "aud": "api", "sub": "ann", "jti": "1", "iat": now, "exp": now + 60,
    ///     "realm_access": {"roles": ["buyer"]},
    /// });
    /// let partner_token = TokenSigner::hmac(Algorithm::HS256, &partner_secret)?
    ///     .sign(&claims("https://partners.example"))?;
    /// assert!(verifier.verify(&partner_token)?.has_role("buyer"));
    ///
    /// // A partner's key cannot vouch for a staff token: the `iss` picks the staff keys.
    /// let forged = TokenSigner::hmac(Algorithm::HS256, &partner_secret)?
    ///     .sign(&claims("https://staff.example"))?;
    /// assert_eq!(verifier.verify(&forged).unwrap_err().kind(), ErrorKind::InvalidSignature);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The token's `iss` is read before anything is verified, only to choose the verifier;
    /// that verifier then runs the whole token path, which checks `iss` again, exactly. An
    /// `iss` no verifier accepts is [`ErrorKind::WrongIssuer`] at once: no key is looked up
    /// and no remote key source is asked to fetch.
    ///
    /// A verifier accepting several issuers serves each of them; a set given here is taken
    /// apart into its members.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when no verifier is given, when one accepts any issuer
    /// (it would leave nothing to choose by), or when two accept the same issuer.
    pub fn by_issuer(
        verifiers: impl IntoIterator<Item = Verifier>,
    ) -> Result<Verifier, ConfigError> {
        let mut issuers: Vec<(Box<str>, Verifier)> = Vec::new();
        let mut max_len = 0;
        for verifier in verifiers {
            let members: Vec<(Box<str>, Verifier)> = match &*verifier.inner {
                Inner::ByIssuer(set) => set.issuers.to_vec(),
                Inner::One(policy) => {
                    let Some(accepted) = &policy.issuers else {
                        return Err(ConfigError::InvalidSetting(
                            "a verifier in a set by issuer must name its issuers",
                        ));
                    };
                    accepted
                        .iter()
                        .map(|issuer| (issuer.clone(), verifier.clone()))
                        .collect()
                }
            };
            for (issuer, member) in members {
                if issuers.iter().any(|(known, _)| *known == issuer) {
                    return Err(ConfigError::InvalidSetting(
                        "two verifiers accept the same issuer",
                    ));
                }
                if let Inner::One(policy) = &*member.inner {
                    max_len = max_len.max(policy.header.max_len);
                }
                issuers.push((issuer, member));
            }
        }
        if issuers.is_empty() {
            return Err(ConfigError::InvalidSetting("no verifier given"));
        }
        Ok(Verifier {
            inner: std::sync::Arc::new(Inner::ByIssuer(ByIssuer {
                issuers: issuers.into_boxed_slice(),
                max_len,
            })),
        })
    }
}

/// The one member of the payload read before verification.
#[derive(Deserialize)]
struct Unverified<'a> {
    #[serde(borrow)]
    iss: Option<&'a RawValue>,
}

impl ByIssuer {
    pub(super) fn verify_pass(&self, token: &[u8], pass: Pass) -> Attempt<Verified> {
        match self.select(token) {
            Ok(verifier) => verifier.verify_pass(token, pass),
            Err(error) => Attempt::Done(Err(error)),
        }
    }

    /// The verifier for the token's unverified `iss`.
    fn select(&self, token: &[u8]) -> Result<&Verifier, AuthError> {
        if token.len() > self.max_len {
            return Err(AuthError::new(ErrorKind::TooLong));
        }
        let payload = jws::unverified_payload(token)?;
        let unverified: Unverified<'_> =
            serde_json::from_slice(&payload).map_err(|_| AuthError::new(ErrorKind::Malformed))?;
        let raw = unverified
            .iss
            .ok_or(AuthError::claim_error(ErrorKind::MissingClaim, "iss"))?;
        let iss: String = serde_json::from_str(raw.get())
            .map_err(|_| AuthError::claim_error(ErrorKind::InvalidClaim, "iss"))?;
        self.issuers
            .iter()
            .find(|(issuer, _)| **issuer == *iss)
            .map(|(_, verifier)| verifier)
            .ok_or(AuthError::claim_error(ErrorKind::WrongIssuer, "iss"))
    }
}

impl fmt::Debug for ByIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.issuers
                    .iter()
                    .map(|(issuer, verifier)| (issuer, verifier)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::Algorithm;
    use crate::keys::KeySet;
    use crate::signer::TokenSigner;

    fn verifier(issuer: &str, secret: u8) -> Verifier {
        Verifier::builder(KeySet::hmac(Algorithm::HS256, &[secret; 32]).unwrap())
            .issuer(issuer)
            .accept_any_audience()
            .required_claims(["iss"])
            .unwrap()
            .build()
            .unwrap()
    }

    fn token(secret: u8, payload: &str) -> String {
        TokenSigner::hmac(Algorithm::HS256, &[secret; 32])
            .unwrap()
            .sign_raw(br#"{"alg":"HS256"}"#, payload.as_bytes())
            .unwrap()
    }

    fn kind(verifier: &Verifier, token: &str) -> Result<(), (ErrorKind, Option<&'static str>)> {
        verifier
            .verify(token)
            .map(drop)
            .map_err(|err| (err.kind(), err.claim()))
    }

    #[test]
    fn the_set_is_validated() {
        let any = Verifier::builder(KeySet::hmac(Algorithm::HS256, &[1; 32]).unwrap())
            .accept_any_issuer()
            .audience("api")
            .build()
            .unwrap();
        assert!(Verifier::by_issuer([any]).is_err());
        assert!(Verifier::by_issuer([]).is_err());
        assert!(Verifier::by_issuer([verifier("a", 1), verifier("a", 2)]).is_err());
        let nested = Verifier::by_issuer([verifier("a", 1)]).unwrap();
        let flat = Verifier::by_issuer([nested.clone(), verifier("b", 2)]).unwrap();
        assert!(Verifier::by_issuer([nested, verifier("a", 3)]).is_err());
        let Inner::ByIssuer(set) = &*flat.inner else {
            panic!("a set")
        };
        assert_eq!(set.issuers.len(), 2);
        assert!(
            set.issuers
                .iter()
                .all(|(_, v)| matches!(&*v.inner, Inner::One(_)))
        );
    }

    #[test]
    fn the_unverified_iss_only_chooses() {
        let set = Verifier::by_issuer([verifier("a", 1), verifier("b", 2)]).unwrap();
        assert_eq!(kind(&set, &token(1, r#"{"iss":"a"}"#)), Ok(()));
        assert_eq!(kind(&set, &token(2, r#"{"iss":"b"}"#)), Ok(()));
        // Escapes are read as JSON reads them, then compared exactly.
        assert_eq!(kind(&set, &token(2, r#"{"iss":"\u0062"}"#)), Ok(()));
        assert_eq!(
            kind(&set, &token(2, r#"{"iss":"a"}"#)),
            Err((ErrorKind::InvalidSignature, None)),
            "b's key does not vouch for a"
        );
        assert_eq!(
            kind(&set, &token(1, r#"{"iss":"c"}"#)),
            Err((ErrorKind::WrongIssuer, Some("iss")))
        );
        assert_eq!(
            kind(&set, &token(1, r#"{"iss":"A"}"#)),
            Err((ErrorKind::WrongIssuer, Some("iss")))
        );
        assert_eq!(
            kind(&set, &token(1, r#"{"sub":"x"}"#)),
            Err((ErrorKind::MissingClaim, Some("iss")))
        );
        assert_eq!(
            kind(&set, &token(1, r#"{"iss":["a"]}"#)),
            Err((ErrorKind::InvalidClaim, Some("iss")))
        );
        assert_eq!(
            kind(&set, &token(1, r#"{"iss":"a","iss":"b"}"#)),
            Err((ErrorKind::Malformed, None))
        );
        assert_eq!(
            kind(&set, &token(1, "not json")),
            Err((ErrorKind::Malformed, None))
        );
        assert_eq!(kind(&set, "a.b"), Err((ErrorKind::Malformed, None)));
        assert_eq!(kind(&set, ".e30.c2ln"), Err((ErrorKind::Malformed, None)));
        assert_eq!(kind(&set, "e30.e30."), Err((ErrorKind::Malformed, None)));
        assert_eq!(
            kind(&set, &"a".repeat(crate::jws::DEFAULT_MAX_TOKEN_LEN + 1)),
            Err((ErrorKind::TooLong, None))
        );
    }
}
