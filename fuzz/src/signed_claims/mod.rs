//! The `signed_claims` target: a JOSE header and a claims object generated as structures
//! (`arbitrary`), rendered to JSON with the knobs a hand-made token varies (member order,
//! duplicate members, escapes and Unicode in strings, number forms, wrongly typed registered
//! claims, `aud` string or array, nested `realm_access.roles`, `scope` or `scp`, `crit`, `typ`
//! spellings, extra members), signed correctly, and verified with a fixed clock.
//!
//! The point is the oracle: [`Case::render`] decides from the structure alone, by the rules of
//! the token path (the crate docs list them) and the RFCs, what the verifier must answer: accepted, with exactly the
//! generated claims, or rejected with a given [`ErrorKind`] (and claim name). It shares no code
//! with the crate's parser or policy. Where the rules leave the choice open it allows a set of
//! kinds (a number beyond the f64 range inside a wrongly typed claim is `Malformed` or
//! `InvalidClaim`, depending on whether the JSON reader had to read it).
//!
//! Dates are exact: every generated NumericDate is a multiple of 1/256 s, so the oracle checks
//! time in integer units of 1/256 s while the crate uses f64, and any rounding in the crate
//! would show.

use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Value};
use tower_jwt_auth::{Algorithm, AuthError, Claims, ErrorKind, TokenSigner, Verifier};

use crate::harness::{AUDIENCE, HMAC_SECRET, ISSUER, NOW, OTHER_ISSUER, PRIVATE_PEMS, keys};

mod json;
mod oracle;
mod render;
mod spec;

pub use json::{Json, Num};
use json::{NumVal, pick};
pub use oracle::{Expected, ExpectedClaims};
use oracle::{claims_verdict, header_verdict};
use render::{Field, render};
pub use spec::*;

/// The second audience the access policy accepts.
pub const SECOND_AUDIENCE: &str = "fuzz-2";
/// The `crit` extension the access policy understands.
pub const UNDERSTOOD_CRITICAL: &str = "x-tenant";
/// NumericDate units per second in the oracle.
const UNITS: i128 = 256;
/// `NumericDate::MAX_SECS` (9999-12-31T23:59:59Z), the latest accepted date.
const MAX_DATE: i128 = 253_402_300_799;
/// The default maximum token length.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The key set of the harness as the oracle sees it: kid and algorithm name.
const KEY_TABLE: [(&str, &str); 7] = [
    ("hs256", "HS256"),
    ("rs256", "RS256"),
    ("ps256", "PS256"),
    ("es256", "ES256"),
    ("es384", "ES384"),
    ("eddsa", "EdDSA"),
    ("rs512", "RS512"),
];

/// One fuzz case.
#[derive(Arbitrary, Debug, Default)]
pub struct Case {
    /// Which verifier judges the token.
    pub policy: PolicyChoice,
    /// Which key signs it.
    pub signer: SignerChoice,
    /// The JOSE header.
    pub header: HeaderSpec,
    /// The claims.
    pub claims: ClaimsSpec,
    /// How the header is written.
    pub header_layout: Layout,
    /// How the claims are written.
    pub claims_layout: Layout,
}

/// The two verifiers.
#[derive(Arbitrary, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PolicyChoice {
    /// Issuers [`ISSUER`] and [`OTHER_ISSUER`], audiences [`AUDIENCE`] and [`SECOND_AUDIENCE`],
    /// leeway 60 s, `typ` `at+jwt` required, roles at `/realm_access/roles`, `crit`
    /// [`UNDERSTOOD_CRITICAL`] understood, default required claims, every key algorithm.
    #[default]
    Access,
    /// Issuer [`ISSUER`], audience [`AUDIENCE`], leeway 1.5 s, no `typ` rule, roles in `roles`,
    /// required claims `exp nbf sub`, algorithms HS256, ES256 and EdDSA only.
    Plain,
}

/// The signing key: HS256 mostly (fast), sometimes the fixed Ed25519 or P-256 key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignerChoice {
    /// `hs256`.
    #[default]
    Hs256,
    /// `eddsa`.
    EdDsa,
    /// `es256`.
    Es256,
}

impl<'a> Arbitrary<'a> for SignerChoice {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=239 => Self::Hs256,
            240..=247 => Self::EdDsa,
            _ => Self::Es256,
        })
    }
}

impl SignerChoice {
    fn kid(self) -> &'static str {
        match self {
            Self::Hs256 => "hs256",
            Self::EdDsa => "eddsa",
            Self::Es256 => "es256",
        }
    }

    fn alg_name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    fn signer(self) -> &'static TokenSigner {
        static SIGNERS: OnceLock<[TokenSigner; 3]> = OnceLock::new();
        let signers = SIGNERS.get_or_init(|| {
            let pem = |alg| {
                let (_, pem) = PRIVATE_PEMS
                    .iter()
                    .find(|(a, _)| *a == alg)
                    .expect("harness key");
                TokenSigner::from_pem(alg, pem).expect("fixed key")
            };
            [
                TokenSigner::hmac(Algorithm::HS256, HMAC_SECRET).expect("fixed key"),
                pem(Algorithm::EdDSA),
                pem(Algorithm::ES256),
            ]
        });
        &signers[self as usize]
    }
}

impl PolicyChoice {
    /// The verifier, configured as [`PolicyChoice::model`] describes.
    pub fn verifier(self) -> &'static Verifier {
        static ACCESS_VERIFIER: OnceLock<Verifier> = OnceLock::new();
        static PLAIN_VERIFIER: OnceLock<Verifier> = OnceLock::new();
        let clock = || UNIX_EPOCH + Duration::from_secs(NOW);
        match self {
            Self::Access => ACCESS_VERIFIER.get_or_init(|| {
                Verifier::builder(keys().clone())
                    .issuer(ISSUER)
                    .issuer(OTHER_ISSUER)
                    .audience(AUDIENCE)
                    .audience(SECOND_AUDIENCE)
                    .leeway(Duration::from_secs(60))
                    .require_type("at+jwt")
                    .and_then(|b| b.roles_claim("/realm_access/roles"))
                    .and_then(|b| b.understood_critical(UNDERSTOOD_CRITICAL))
                    .expect("fixed settings")
                    .clock(clock)
                    .build()
                    .expect("fixed verifier")
            }),
            Self::Plain => PLAIN_VERIFIER.get_or_init(|| {
                Verifier::builder(keys().clone())
                    .issuer(ISSUER)
                    .audience(AUDIENCE)
                    .leeway(Duration::from_millis(1500))
                    .required_claims(["exp", "sub", "nbf"])
                    .and_then(|b| {
                        b.algorithms([Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA])
                    })
                    .expect("fixed settings")
                    .clock(clock)
                    .build()
                    .expect("fixed verifier")
            }),
        }
    }
}

/// The token a case renders to, and what the verifier must answer for it.
#[derive(Debug)]
pub struct Rendered {
    /// The header JSON.
    pub header: String,
    /// The claims JSON.
    pub payload: String,
    /// The signed compact token.
    pub token: String,
    /// The oracle's verdict.
    pub expected: Expected,
}

impl Case {
    /// Renders, signs and judges this case.
    ///
    /// # Panics
    ///
    /// When the fixed signing keys fail.
    #[must_use]
    pub fn render(&self) -> Rendered {
        let header_fields = self.header.fields(self.signer);
        let claim_fields = self.claims.fields();
        let header = render(&header_fields, self.header_layout);
        let payload = render(&claim_fields, self.claims_layout);
        let token = self
            .signer
            .signer()
            .sign_raw(header.as_bytes(), payload.as_bytes())
            .expect("signing with a fixed key");
        let model = self.policy.model();
        let expected = if token.len() > MAX_TOKEN_LEN {
            Expected::one(ErrorKind::TooLong)
        } else {
            match header_verdict(&header_fields, model, self.signer) {
                Some(rejected) => rejected,
                None => claims_verdict(&claim_fields, model),
            }
        };
        Rendered {
            header,
            payload,
            token,
            expected,
        }
    }
}

fn observed(claims: &Claims) -> ExpectedClaims {
    let units = |date: Option<tower_jwt_auth::NumericDate>| {
        date.map(|d| {
            let scaled = d.as_secs_f64() * 256.0;
            assert!(
                scaled.fract() == 0.0,
                "a date that is not a 1/256 s multiple"
            );
            // Exact: dates are below 2^38 s.
            scaled as i128
        })
    };
    ExpectedClaims {
        iss: claims.issuer().map(str::to_owned),
        sub: claims.subject().map(str::to_owned),
        aud: claims.audience().to_vec(),
        exp: units(claims.expires_at()),
        nbf: units(claims.not_before()),
        iat: units(claims.issued_at()),
        jti: claims.jwt_id().map(str::to_owned),
        roles: claims.roles().to_vec(),
        scopes: claims.scopes().iter().map(str::to_owned).collect(),
        extra: claims.extra().clone(),
    }
}

/// Checks the verifier's answer against the oracle's.
///
/// # Panics
///
/// When they disagree (a bug in the crate or in the oracle), or when verifying the same token
/// twice (the second time through the header memo) answers differently.
pub fn check(case: &Case) -> Rendered {
    let rendered = case.render();
    let verifier = case.policy.verifier();
    let got = verifier.verify(&rendered.token);
    let context = || {
        format!(
            "policy {:?}, signer {:?}\nheader  {}\npayload {}\nexpected {:?}\ngot {:?}",
            case.policy, case.signer, rendered.header, rendered.payload, rendered.expected, got
        )
    };
    match (&rendered.expected, &got) {
        (Expected::Accepted(want), Ok(claims)) => {
            assert_eq!(**want, observed(claims), "{}", context());
            let scopes = claims.scopes().iter().collect::<Vec<_>>().join(" ");
            assert_eq!(claims.scopes().as_str(), scopes, "{}", context());
        }
        (Expected::Rejected(allowed), Err(err)) => assert!(
            allowed.contains(&(err.kind(), err.claim())),
            "{}",
            context()
        ),
        _ => panic!("verdicts differ\n{}", context()),
    }
    let again: Result<Claims, AuthError> = verifier.verify(&rendered.token);
    assert_eq!(again, got, "a second verification differs\n{}", context());
    rendered
}

/// Bytes → a [`Case`] → [`check`].
pub fn signed_claims(data: &[u8]) {
    if let Some(case) = case(data) {
        check(&case);
    }
}

/// The case these bytes decode to (for the seed generator and the corpus test).
#[must_use]
pub fn case(data: &[u8]) -> Option<Case> {
    Case::arbitrary_take_rest(Unstructured::new(data)).ok()
}
