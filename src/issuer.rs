//! [`TokenIssuer`]: signs OAuth 2.0 access tokens in the JWT profile of RFC 9068, and publishes
//! the public key that verifies them.
//!
//! ```
//! use std::time::Duration;
//! use tower_jwt_auth::issuer::{AccessGrant, TokenIssuer};
//! use tower_jwt_auth::{KeySet, Verifier};
//!
//! let pem = std::fs::read("tests/data/keys/ed25519.pkcs8.pem")?;
//! let issuer = TokenIssuer::from_pem(&pem, "https://auth.example", "api")?
//!     .with_access_ttl(Duration::from_secs(600))?;
//!
//! let scopes = ["items:read".to_owned(), "items:write".to_owned()];
//! let roles = ["admin".to_owned()];
//! let grant = AccessGrant::new("alice", "web-app", "session-7")
//!     .with_scopes(&scopes)
//!     .with_roles(&roles);
//! let issued = issuer.issue(&grant)?;
//! assert_eq!(issued.expires_at - issued.issued_at, 600);
//!
//! let claims = issuer.verifier()?.verify(&issued.token)?;
//! assert_eq!(claims.subject(), Some("alice"));
//! assert_eq!(claims.client_id(), Some("web-app"));
//! assert_eq!(claims.session_id(), Some("session-7"));
//! assert_eq!(claims.jwt_id(), Some(issued.jti.as_str()));
//! assert!(claims.has_role("admin") && claims.has_all_scopes(["items:read", "items:write"]));
//!
//! // A resource server needs only the published JWKS document.
//! let jwks = issuer.jwks().to_string();
//! let resource_server = Verifier::builder(KeySet::from_jwks(&jwks)?)
//!     .issuer("https://auth.example")
//!     .audience("api")
//!     .require_type("at+jwt")?
//!     .build()?;
//! assert!(resource_server.verify(&issued.token).is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every token has the header `{"alg", "kid", "typ": "at+jwt"}` and exactly the claims `iss sub
//! aud exp iat jti client_id scope roles sid` (`scope` only when the grant has scopes). The
//! `kid` is the RFC 7638 thumbprint of the public key, or for an HMAC secret a value derived
//! from the secret that reveals nothing of it; either way it stays the same across restarts.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::claims::is_scope_token;
use crate::error::{ConfigError, SignError};
use crate::keys::KeySet;
use crate::keys::der;
use crate::signer::TokenSigner;
use crate::verifier::{ACCESS_TOKEN_TYPE, Verifier, VerifierBuilder};

/// What the `kid` of an HMAC issuer is the MAC of. It contains no `.`, so it can never be the
/// signing input of a JWS: the `kid` is no signature over anything a verifier would accept.
const HMAC_KID_LABEL: &[u8] = b"tower-jwt-auth hmac key id";

type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Signs RFC 9068 access tokens with one key, for one issuer and one audience.
///
/// Build it once ([`TokenIssuer::hmac`], [`TokenIssuer::from_pem`],
/// [`TokenIssuer::generate_ed25519`]) and share it: cloning is cheap (one `Arc`). Its `Debug`
/// output never shows the key.
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// Puts `kid` and `typ: at+jwt` in every header.
    signer: TokenSigner,
    kid: String,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    /// `None`: the system clock.
    clock: Option<Clock>,
    /// The public members of the key's JWK (`kty`, `crv`, `n`, `e`, `x`, `y`), chosen one by
    /// one so that no private member can slip in; `None` for an HMAC secret.
    public_jwk: Option<Map<String, Value>>,
}

impl TokenIssuer {
    /// The default lifetime of an access token: 15 minutes.
    pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
    /// The shortest accepted access-token lifetime: 1 second.
    pub const MIN_ACCESS_TTL: Duration = Duration::from_secs(1);
    /// The longest accepted access-token lifetime: 24 hours.
    pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

    /// An issuer signing with HS256 under this secret. Its [`jwks`](TokenIssuer::jwks) is
    /// empty: whoever verifies needs the secret itself ([`TokenIssuer::key_set`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::WeakHmacSecret`] when the secret is shorter than 32 bytes,
    /// [`ConfigError::InvalidSetting`] when `issuer` or `audience` is empty.
    pub fn hmac(
        secret: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let signer = TokenSigner::hmac(Algorithm::HS256, secret)?;
        let mac = jsonwebtoken::crypto::sign(
            HMAC_KID_LABEL,
            signer.encoding_key(),
            jsonwebtoken::Algorithm::HS256,
        )
        .map_err(|_| ConfigError::InvalidKey("rejected by the crypto backend"))?;
        Self::new(signer, None, mac, issuer.into(), audience.into())
    }

    /// An issuer signing with a private key in PEM; the algorithm follows the key:
    ///
    /// | key | PEM label | algorithm |
    /// |---|---|---|
    /// | RSA, 2048 bits or more | `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8) | RS256 |
    /// | P-256 | `PRIVATE KEY` (PKCS#8) | ES256 |
    /// | P-384 | `PRIVATE KEY` (PKCS#8) | ES384 |
    /// | Ed25519 | `PRIVATE KEY` (PKCS#8) | EdDSA |
    ///
    /// SEC1 `EC PRIVATE KEY` files are refused with a hint: convert them with
    /// `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pkcs8.pem`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] for a PEM that is not one of these private keys (a public
    /// key, a certificate, an encrypted or SEC1 key, unreadable DER),
    /// [`ConfigError::KeyAlgorithmMismatch`] for another key type or curve (such as P-521),
    /// [`ConfigError::RsaKeySize`] for RSA keys under 2048 bits, [`ConfigError::InvalidSetting`]
    /// when `issuer` or `audience` is empty.
    pub fn from_pem(
        pem: &[u8],
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let block = ::pem::parse(pem).map_err(|_| ConfigError::InvalidKey("not a pem block"))?;
        let signer = match block.tag() {
            "RSA PRIVATE KEY" => TokenSigner::from_der(Algorithm::RS256, block.contents())?,
            "PRIVATE KEY" => TokenSigner::from_pkcs8(block.contents(), Algorithm::RS256)?,
            "EC PRIVATE KEY" => {
                return Err(ConfigError::InvalidKey(
                    "sec1 `EC PRIVATE KEY` pem is not supported; convert it to pkcs#8 with \
                     `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.pkcs8.pem`",
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(ConfigError::InvalidKey(
                    "encrypted private key; decrypt it with \
                     `openssl pkcs8 -in key.pem -out key.pkcs8.pem`",
                ));
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
                return Err(ConfigError::InvalidKey(
                    "a public key cannot sign; give the private key",
                ));
            }
            _ => {
                return Err(ConfigError::InvalidKey(
                    "unsupported pem label; expected `PRIVATE KEY` or `RSA PRIVATE KEY`",
                ));
            }
        };
        Self::asymmetric(signer, issuer.into(), audience.into())
    }

    /// An issuer signing with a fresh Ed25519 key from the operating system's CSPRNG. The key
    /// lives only in memory: tokens stop verifying when the process ends, so this suits tests
    /// and single-process deployments that publish [`jwks`](TokenIssuer::jwks).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] when `issuer` or `audience` is empty;
    /// [`ConfigError::InvalidKey`] when the random number generator fails.
    pub fn generate_ed25519(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| {
            ConfigError::InvalidKey("the operating system's random number generator failed")
        })?;
        let signer = TokenSigner::from_der(Algorithm::EdDSA, &der::ed25519_pkcs8(&seed))?;
        Self::asymmetric(signer, issuer.into(), audience.into())
    }

    /// A fresh Ed25519 private key from the operating system's CSPRNG, as a PKCS#8 PEM
    /// document (`-----BEGIN PRIVATE KEY-----`) that [`from_pem`](TokenIssuer::from_pem)
    /// reads: to generate a signing key once and keep it (in a file only its owner can read),
    /// so that tokens outlive the process.
    ///
    /// ```
    /// use tower_jwt_auth::issuer::TokenIssuer;
    ///
    /// let pem = TokenIssuer::generate_ed25519_pem()?;
    /// assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    /// let issuer = TokenIssuer::from_pem(pem.as_bytes(), "https://auth.example", "api")?;
    /// assert_eq!(issuer.algorithm(), tower_jwt_auth::Algorithm::EdDSA);
    /// # Ok::<(), tower_jwt_auth::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] when the random number generator fails.
    pub fn generate_ed25519_pem() -> Result<zeroize::Zeroizing<String>, ConfigError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| {
            ConfigError::InvalidKey("the operating system's random number generator failed")
        })?;
        let der = der::ed25519_pkcs8(&seed);
        let document = pem::Pem::new("PRIVATE KEY", der.to_vec());
        let text = zeroize::Zeroizing::new(pem::encode(&document));
        // `Pem` keeps its own copy of the key; wipe it too.
        let mut contents = document.into_contents();
        zeroize::Zeroize::zeroize(&mut contents);
        Ok(text)
    }

    fn asymmetric(
        signer: TokenSigner,
        issuer: String,
        audience: String,
    ) -> Result<Self, ConfigError> {
        let (public_jwk, thumbprint) = signer.public_jwk()?;
        Self::new(signer, Some(public_jwk), thumbprint, issuer, audience)
    }

    fn new(
        signer: TokenSigner,
        public_jwk: Option<Map<String, Value>>,
        kid: String,
        issuer: String,
        audience: String,
    ) -> Result<Self, ConfigError> {
        if issuer.is_empty() {
            return Err(ConfigError::InvalidSetting("issuer must not be empty"));
        }
        if audience.is_empty() {
            return Err(ConfigError::InvalidSetting("audience must not be empty"));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                signer: signer.with_kid(kid.clone()).with_type(ACCESS_TOKEN_TYPE),
                kid,
                issuer,
                audience,
                access_ttl: Self::DEFAULT_ACCESS_TTL,
                clock: None,
                public_jwk,
            }),
        })
    }

    /// Replaces the `kid` (default: the key's RFC 7638 thumbprint, or for HMAC an id derived
    /// from the secret), in the tokens and in the JWKS alike.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.kid = kid.into();
        inner.signer = inner.signer.clone().with_kid(inner.kid.clone());
        self
    }

    /// Sets the lifetime of access tokens (default [`TokenIssuer::DEFAULT_ACCESS_TTL`]):
    /// `exp = iat + ttl`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidSetting`] unless `ttl` is a whole number of seconds from
    /// [`TokenIssuer::MIN_ACCESS_TTL`] to [`TokenIssuer::MAX_ACCESS_TTL`].
    pub fn with_access_ttl(mut self, ttl: Duration) -> Result<Self, ConfigError> {
        if ttl < Self::MIN_ACCESS_TTL || ttl > Self::MAX_ACCESS_TTL || ttl.subsec_nanos() != 0 {
            return Err(ConfigError::InvalidSetting(
                "access token lifetime must be whole seconds from 1 s to 24 h",
            ));
        }
        Arc::make_mut(&mut self.inner).access_ttl = ttl;
        Ok(self)
    }

    /// The clock `iat` and `exp` are taken from (default: the system clock). The verifier from
    /// [`TokenIssuer::verifier`] reads the same clock.
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Arc::make_mut(&mut self.inner).clock = Some(Arc::new(clock));
        self
    }

    /// The `iss` of every token.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `aud` of every token.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The signing algorithm, which follows the key.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.inner.signer.algorithm()
    }

    /// The `kid` in every token's header (and in the JWKS).
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The lifetime of access tokens.
    #[must_use]
    pub fn access_ttl(&self) -> Duration {
        self.inner.access_ttl
    }

    /// Signs an access token for this grant, with a fresh `jti` (128 random bits).
    ///
    /// # Errors
    ///
    /// [`SignError`] when the subject, client id or session id is empty, when a scope is not
    /// an RFC 6749 scope token (empty, or a space, `"`, `\`, a control or non-ASCII
    /// character), when the clock reads before 1970, when the random number generator fails,
    /// or when the backend fails to sign.
    pub fn issue(&self, grant: &AccessGrant<'_>) -> Result<IssuedToken, SignError> {
        grant.check()?;
        let inner = &*self.inner;
        let now = inner
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock());
        let issued_at = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError("the clock reads before 1970".to_owned()))?
            .as_secs();
        let expires_at = issued_at
            .checked_add(inner.access_ttl.as_secs())
            .ok_or_else(|| SignError("the clock reads beyond any expiry".to_owned()))?;
        let jti = crate::ids::random_id()?;
        let scope = grant.scopes.join(" ");
        let claims = AccessClaims {
            iss: &inner.issuer,
            sub: grant.subject,
            aud: &inner.audience,
            exp: expires_at,
            iat: issued_at,
            jti: &jti,
            client_id: grant.client_id,
            scope: (!scope.is_empty()).then_some(&scope),
            roles: grant.roles,
            sid: grant.session_id,
        };
        let token = inner.signer.sign(&claims)?;
        Ok(IssuedToken {
            token,
            jti,
            issued_at,
            expires_at,
        })
    }

    /// The public JWKS document to publish (for example at `/jwks.json`): `{"keys": [{"kty",
    /// ..., "kid", "alg", "use": "sig"}]}` with only public members. Empty (`{"keys": []}`) for
    /// an HMAC secret, which is never published.
    #[must_use]
    pub fn jwks(&self) -> Value {
        let keys = self
            .inner
            .public_jwk
            .iter()
            .map(|public| {
                let mut jwk = public.clone();
                jwk.insert("kid".to_owned(), Value::from(self.kid()));
                jwk.insert("alg".to_owned(), Value::from(self.algorithm().as_str()));
                jwk.insert("use".to_owned(), Value::from("sig"));
                Value::Object(jwk)
            })
            .collect();
        let mut document = Map::new();
        document.insert("keys".to_owned(), Value::Array(keys));
        Value::Object(document)
    }

    /// A key set that verifies this issuer's tokens: for a key pair, read from the issuer's own
    /// [`jwks`](TokenIssuer::jwks) document (so it sees exactly what resource servers see); for
    /// an HMAC secret, the secret under the issuer's `kid`.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] only if the issuer's own key does not load as a verification key,
    /// which would be a bug.
    pub fn key_set(&self) -> Result<KeySet, ConfigError> {
        let inner = &*self.inner;
        if inner.public_jwk.is_some() {
            KeySet::from_jwks(self.jwks().to_string())
        } else {
            KeySet::builder()
                .hmac(
                    Some(&inner.kid),
                    inner.signer.algorithm(),
                    inner.signer.encoding_key().as_bytes(),
                )?
                .build()
        }
    }

    /// A verifier builder preset for this issuer's tokens, to adjust (leeway, role and scope
    /// claims, ...) before building: keys from [`TokenIssuer::key_set`], this issuer and
    /// audience, `typ` `at+jwt` required, and the issuer's [clock](TokenIssuer::clock) when one
    /// was set.
    ///
    /// # Errors
    ///
    /// As [`TokenIssuer::key_set`].
    pub fn verifier_builder(&self) -> Result<VerifierBuilder, ConfigError> {
        let builder = Verifier::builder(self.key_set()?)
            .issuer(self.issuer())
            .audience(self.audience())
            .require_type(ACCESS_TOKEN_TYPE)?;
        Ok(match &self.inner.clock {
            Some(clock) => {
                let clock = Arc::clone(clock);
                builder.clock(move || clock())
            }
            None => builder,
        })
    }

    /// A verifier for this issuer's tokens: [`TokenIssuer::verifier_builder`] with the
    /// verifier defaults otherwise.
    ///
    /// # Errors
    ///
    /// As [`TokenIssuer::key_set`].
    pub fn verifier(&self) -> Result<Verifier, ConfigError> {
        self.verifier_builder()?.build()
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("TokenIssuer")
            .field("issuer", &inner.issuer)
            .field("audience", &inner.audience)
            .field("algorithm", &inner.signer.algorithm())
            .field("kid", &inner.kid)
            .field("access_ttl", &inner.access_ttl)
            .field(
                "clock",
                &if inner.clock.is_some() {
                    "custom"
                } else {
                    "system"
                },
            )
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Who and what an access token is for: the input of [`TokenIssuer::issue`].
///
/// Build it with [`AccessGrant::new`] and the `with_*` methods, or as a struct literal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccessGrant<'a> {
    /// The `sub` claim: the user. Must not be empty.
    pub subject: &'a str,
    /// The `client_id` claim: the client the token was issued to. Must not be empty.
    pub client_id: &'a str,
    /// The `sid` claim: the session (for the login router, the refresh-token family), so that
    /// revoking the session can revoke its access tokens. Must not be empty.
    pub session_id: &'a str,
    /// The granted scopes, RFC 6749 scope tokens, signed as one space-delimited `scope` claim
    /// (left out when there are none).
    pub scopes: &'a [String],
    /// The `roles` claim, an array (possibly empty).
    pub roles: &'a [String],
}

impl<'a> AccessGrant<'a> {
    /// A grant without scopes or roles.
    #[must_use]
    pub fn new(subject: &'a str, client_id: &'a str, session_id: &'a str) -> Self {
        Self {
            subject,
            client_id,
            session_id,
            scopes: &[],
            roles: &[],
        }
    }

    /// Sets the granted scopes.
    #[must_use]
    pub fn with_scopes(mut self, scopes: &'a [String]) -> Self {
        self.scopes = scopes;
        self
    }

    /// Sets the roles.
    #[must_use]
    pub fn with_roles(mut self, roles: &'a [String]) -> Self {
        self.roles = roles;
        self
    }

    fn check(&self) -> Result<(), SignError> {
        let missing = |what: &str| Err(SignError(format!("access grant without {what}")));
        if self.subject.is_empty() {
            return missing("a subject");
        }
        if self.client_id.is_empty() {
            return missing("a client id");
        }
        if self.session_id.is_empty() {
            return missing("a session id");
        }
        if !self.scopes.iter().all(|scope| is_scope_token(scope)) {
            return Err(SignError(
                "a scope is not an rfc 6749 scope token".to_owned(),
            ));
        }
        Ok(())
    }
}

/// A signed access token and the values a token response or a revocation list needs.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `iat`, in seconds since the epoch.
    pub issued_at: u64,
    /// Its `exp`, in seconds since the epoch.
    pub expires_at: u64,
}

impl IssuedToken {
    /// The lifetime in seconds, the `expires_in` of an OAuth 2.0 token response.
    #[must_use]
    pub fn expires_in(&self) -> u64 {
        self.expires_at - self.issued_at
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"[redacted]")
            .field("jti", &self.jti)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The RFC 9068 claims, in this order.
#[derive(Serialize)]
struct AccessClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    jti: &'a str,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a String>,
    roles: &'a [String],
    sid: &'a str,
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;
    use crate::encoding::BASE64URL;
    use crate::error::ErrorKind;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn hmac_issuer() -> TokenIssuer {
        TokenIssuer::hmac(SECRET, "https://auth.test", "api").unwrap()
    }

    fn pem_issuer(file: &str) -> Result<TokenIssuer, ConfigError> {
        TokenIssuer::from_pem(&crate::fixtures::key_file(file), "https://auth.test", "api")
    }

    fn payload(token: &str) -> Map<String, Value> {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&BASE64URL.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_algorithm_follows_the_key() {
        for (file, alg) in [
            ("rsa2048.pkcs1.pem", Algorithm::RS256),
            ("rsa2048.pkcs8.pem", Algorithm::RS256),
            ("p256.pkcs8.pem", Algorithm::ES256),
            ("p384.pkcs8.pem", Algorithm::ES384),
            ("ed25519.pkcs8.pem", Algorithm::EdDSA),
        ] {
            assert_eq!(pem_issuer(file).unwrap().algorithm(), alg, "{file}");
        }
        assert_eq!(hmac_issuer().algorithm(), Algorithm::HS256);
    }

    #[test]
    fn unusable_pems_are_refused_with_a_reason() {
        let sec1 = pem_issuer("p256.sec1.pem").unwrap_err();
        assert!(
            sec1.to_string()
                .contains("openssl pkcs8 -topk8 -nocrypt -in key.pem"),
            "{sec1}"
        );
        for public in ["p256.pub.pem", "rsa2048.pub.pem", "rsa2048.pub.pkcs1.pem"] {
            assert_eq!(
                pem_issuer(public).unwrap_err(),
                ConfigError::InvalidKey("a public key cannot sign; give the private key"),
                "{public}"
            );
        }
        assert!(matches!(
            pem_issuer("p521.pkcs8.pem"),
            Err(ConfigError::KeyAlgorithmMismatch(_))
        ));
        assert!(matches!(
            pem_issuer("rsa1024.pkcs8.pem").unwrap_err(),
            ConfigError::RsaKeySize { bits: 1024, .. }
        ));
        assert!(matches!(
            pem_issuer("rsa1024.pkcs1.pem").unwrap_err(),
            ConfigError::RsaKeySize { bits: 1024, .. }
        ));
        let encrypted = ::pem::encode(&::pem::Pem::new("ENCRYPTED PRIVATE KEY", vec![0x30, 0]));
        assert!(
            TokenIssuer::from_pem(encrypted.as_bytes(), "i", "a")
                .unwrap_err()
                .to_string()
                .contains("decrypt")
        );
        assert!(TokenIssuer::from_pem(b"not pem", "i", "a").is_err());
        // A PKCS#8 wrapper whose DER is cut short.
        let der = crate::fixtures::key_file("p256.pkcs8.der");
        let cut = ::pem::encode(&::pem::Pem::new(
            "PRIVATE KEY",
            der[..der.len() - 1].to_vec(),
        ));
        assert!(TokenIssuer::from_pem(cut.as_bytes(), "i", "a").is_err());
    }

    #[test]
    fn ed25519_pkcs8_version_2_signs_like_version_1() {
        // RFC 5958 `OneAsymmetricKey` v2: the v1 key plus `[1] publicKey`.
        let v1 = crate::fixtures::key_file("ed25519.pkcs8.der");
        let public = crate::fixtures::key_file("ed25519.pub.der");
        let mut body = vec![0x02, 0x01, 0x01];
        body.extend_from_slice(&v1[5..]);
        body.extend_from_slice(&[0x81, 0x21, 0x00]);
        body.extend_from_slice(&public[public.len() - 32..]);
        let mut v2 = vec![0x30, u8::try_from(body.len()).unwrap()];
        v2.extend_from_slice(&body);
        let v2 = ::pem::encode(&::pem::Pem::new("PRIVATE KEY", v2));

        let from_v2 = TokenIssuer::from_pem(v2.as_bytes(), "https://auth.test", "api").unwrap();
        let from_v1 = pem_issuer("ed25519.pkcs8.pem").unwrap();
        assert_eq!(from_v2.kid(), from_v1.kid());
        assert_eq!(from_v2.jwks(), from_v1.jwks());
    }

    #[test]
    fn hmac_kid_is_stable_and_reveals_nothing() {
        let kid = hmac_issuer().kid().to_owned();
        assert_eq!(hmac_issuer().kid(), kid);
        assert_eq!(kid.len(), 43);
        let other = TokenIssuer::hmac(&[7; 32], "https://auth.test", "api").unwrap();
        assert_ne!(other.kid(), kid);
        let secret_b64 = BASE64URL.encode(SECRET);
        assert!(!kid.contains("0123456789") && !kid.contains(&secret_b64[..8]));
        assert_eq!(hmac_issuer().jwks(), serde_json::json!({"keys": []}));
        assert!(matches!(
            TokenIssuer::hmac(&SECRET[..31], "i", "a"),
            Err(ConfigError::WeakHmacSecret { .. })
        ));
    }

    #[test]
    fn issuer_and_audience_must_not_be_empty() {
        assert!(matches!(
            TokenIssuer::hmac(SECRET, "", "api"),
            Err(ConfigError::InvalidSetting(_))
        ));
        assert!(matches!(
            TokenIssuer::generate_ed25519("https://auth.test", ""),
            Err(ConfigError::InvalidSetting(_))
        ));
    }

    #[test]
    fn access_ttl_is_whole_seconds_from_one_second_to_a_day() {
        for bad in [
            Duration::ZERO,
            Duration::from_millis(999),
            Duration::from_millis(1500),
            TokenIssuer::MAX_ACCESS_TTL + Duration::from_secs(1),
        ] {
            assert!(
                matches!(
                    hmac_issuer().with_access_ttl(bad),
                    Err(ConfigError::InvalidSetting(_))
                ),
                "{bad:?}"
            );
        }
        for good in [TokenIssuer::MIN_ACCESS_TTL, TokenIssuer::MAX_ACCESS_TTL] {
            let issuer = hmac_issuer().with_access_ttl(good).unwrap();
            assert_eq!(issuer.access_ttl(), good);
        }
        assert_eq!(hmac_issuer().access_ttl(), Duration::from_secs(900));
    }

    #[test]
    fn claims_are_exactly_the_rfc_9068_set() {
        let issuer = hmac_issuer().clock(|| UNIX_EPOCH + Duration::from_secs(1_000));
        let scopes = ["a".to_owned(), "b:c".to_owned()];
        let roles = ["admin".to_owned()];
        let grant = AccessGrant::new("alice", "app", "s1")
            .with_scopes(&scopes)
            .with_roles(&roles);
        let issued = issuer.issue(&grant).unwrap();
        let claims = payload(&issued.token);
        let names: Vec<&str> = claims.keys().map(String::as_str).collect();
        let mut expected = [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
            "roles",
            "sid",
        ];
        expected.sort_unstable();
        assert_eq!(names, expected);
        assert_eq!(claims["scope"], "a b:c");
        assert_eq!(claims["roles"], serde_json::json!(["admin"]));
        assert_eq!(claims["iat"], 1_000);
        assert_eq!(claims["exp"], 1_900);
        assert_eq!((issued.issued_at, issued.expires_at), (1_000, 1_900));
        assert_eq!(issued.expires_in(), 900);

        // No scopes: no `scope` claim (not an empty string); no roles: an empty array.
        let bare = issuer
            .issue(&AccessGrant::new("alice", "app", "s1"))
            .unwrap();
        let claims = payload(&bare.token);
        assert!(!claims.contains_key("scope"));
        assert_eq!(claims["roles"], serde_json::json!([]));
    }

    #[test]
    fn every_token_has_a_fresh_128_bit_jti() {
        let issuer = hmac_issuer();
        let grant = AccessGrant::new("alice", "app", "s1");
        let a = issuer.issue(&grant).unwrap();
        let b = issuer.issue(&grant).unwrap();
        assert_ne!(a.jti, b.jti);
        assert_eq!(BASE64URL.decode(&a.jti).unwrap().len(), 16);
        assert_eq!(payload(&a.token)["jti"], a.jti.as_str());
    }

    #[test]
    fn grants_that_would_not_verify_are_refused() {
        let issuer = hmac_issuer();
        let scopes = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for grant in [
            AccessGrant::new("", "app", "s1"),
            AccessGrant::new("alice", "", "s1"),
            AccessGrant::new("alice", "app", ""),
        ] {
            assert!(issuer.issue(&grant).is_err(), "{grant:?}");
        }
        for bad in [&["a b"][..], &[""], &["a\"b"], &["a\\b"], &["é"], &["a\n"]] {
            let bad = scopes(bad);
            let grant = AccessGrant::new("alice", "app", "s1").with_scopes(&bad);
            assert!(issuer.issue(&grant).is_err(), "{bad:?}");
        }
        let ok = scopes(&["!#[]~", "items:read"]);
        let grant = AccessGrant::new("alice", "app", "s1").with_scopes(&ok);
        assert!(issuer.issue(&grant).is_ok());
    }

    #[test]
    fn a_clock_before_1970_cannot_issue() {
        let issuer = hmac_issuer().clock(|| UNIX_EPOCH - Duration::from_secs(1));
        assert!(issuer.issue(&AccessGrant::new("a", "b", "c")).is_err());
    }

    #[test]
    fn with_kid_renames_the_key_everywhere() {
        let issuer = pem_issuer("p256.pkcs8.pem").unwrap().with_kid("ec-main");
        assert_eq!(issuer.kid(), "ec-main");
        assert_eq!(issuer.jwks()["keys"][0]["kid"], "ec-main");
        let token = issuer
            .issue(&AccessGrant::new("a", "b", "c"))
            .unwrap()
            .token;
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(&BASE64URL.decode(header).unwrap()).unwrap();
        assert_eq!(header["kid"], "ec-main");
        assert_eq!(
            issuer.key_set().unwrap().algorithm(Some("ec-main")),
            Some(Algorithm::ES256)
        );
        assert!(issuer.verifier().unwrap().verify(&token).is_ok());
    }

    #[test]
    fn clones_share_and_setters_do_not_leak_into_clones() {
        let issuer = hmac_issuer();
        let renamed = issuer.clone().with_kid("other");
        assert_ne!(issuer.kid(), "other");
        assert_eq!(renamed.kid(), "other");
        let token = renamed
            .issue(&AccessGrant::new("a", "b", "c"))
            .unwrap()
            .token;
        assert_eq!(
            issuer
                .verifier()
                .unwrap()
                .verify(&token)
                .unwrap_err()
                .kind(),
            ErrorKind::UnknownKey
        );
    }

    #[test]
    fn debug_redacts_the_key_and_the_token() {
        let issuer = hmac_issuer();
        let debug = format!("{issuer:?}");
        assert!(debug.contains("[redacted]") && debug.contains("https://auth.test"));
        assert!(!debug.contains("0123456789"));
        let issued = issuer
            .issue(&AccessGrant::new("alice", "app", "s1"))
            .unwrap();
        let debug = format!("{issued:?}");
        assert!(debug.contains("[redacted]") && debug.contains(&issued.jti));
        assert!(!debug.contains(&issued.token[..20]));
    }
}
