//! The oracle: the verdict the token path must reach, from the structure alone, by the rules
//! of the token path (the crate docs list them) and the RFCs. Nothing here calls into the crate's parser or policy.

use super::*;

pub(super) struct Model {
    pub(super) algorithms: &'static [&'static str],
    pub(super) typ_required: bool,
    pub(super) understood: &'static [&'static str],
    pub(super) issuers: &'static [&'static str],
    pub(super) audiences: &'static [&'static str],
    pub(super) leeway_units: i128,
    /// In the order the verifier reports a missing one (the crate docs list them so; `nbf`
    /// sits after `exp`).
    pub(super) required: &'static [&'static str],
    pub(super) nested_roles: bool,
}

pub(super) const ACCESS: Model = Model {
    algorithms: &[
        "HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA", "RS512",
    ],
    typ_required: true,
    understood: &[UNDERSTOOD_CRITICAL],
    issuers: &[ISSUER, OTHER_ISSUER],
    audiences: &[AUDIENCE, SECOND_AUDIENCE],
    leeway_units: 60 * UNITS,
    required: &["exp", "iat", "sub", "iss", "aud", "jti"],
    nested_roles: true,
};

pub(super) const PLAIN: Model = Model {
    algorithms: &["HS256", "ES256", "EdDSA"],
    typ_required: false,
    understood: &[],
    issuers: &[ISSUER],
    audiences: &[AUDIENCE],
    leeway_units: 3 * UNITS / 2,
    required: &["exp", "nbf", "sub"],
    nested_roles: false,
};

impl PolicyChoice {
    pub(super) fn model(self) -> &'static Model {
        match self {
            Self::Access => &ACCESS,
            Self::Plain => &PLAIN,
        }
    }
}

/// What the verifier must answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    /// Accepted, with these claims.
    Accepted(Box<ExpectedClaims>),
    /// Rejected with one of these (kind, claim) pairs; usually exactly one.
    Rejected(Vec<(ErrorKind, Option<&'static str>)>),
}

/// The claims an accepted token must yield.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ExpectedClaims {
    pub(super) iss: Option<String>,
    pub(super) sub: Option<String>,
    pub(super) aud: Vec<String>,
    pub(super) exp: Option<i128>,
    pub(super) nbf: Option<i128>,
    pub(super) iat: Option<i128>,
    pub(super) jti: Option<String>,
    pub(super) roles: Vec<String>,
    pub(super) scopes: Vec<String>,
    pub(super) extra: Map<String, Value>,
}

impl Expected {
    pub(super) fn one(kind: ErrorKind) -> Self {
        Self::Rejected(vec![(kind, None)])
    }

    pub(super) fn claim(kind: ErrorKind, claim: &'static str) -> Self {
        Self::Rejected(vec![(kind, Some(claim))])
    }

    /// A short name for the outcome (`accepted`, or the kind's name).
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Accepted(_) => "accepted".to_owned(),
            Self::Rejected(kinds) => format!("{:?}", kinds[0].0).to_ascii_lowercase(),
        }
    }
}

/// Step 3 and 4 from the structure: `None` when the header passes and the signature verifies.
pub(super) fn header_verdict(
    fields: &[Field],
    model: &Model,
    signer: SignerChoice,
) -> Option<Expected> {
    let malformed = Some(Expected::one(ErrorKind::Malformed));
    // A JSON object without duplicate members at any depth, `alg`, `kid`, `typ` strings,
    // `crit` an array of strings, `b64` a boolean.
    let (mut alg, mut kid, mut typ, mut crit, mut b64) = (None, None, None, None, None);
    let mut others: Vec<&str> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if f.value.has_duplicate()
            || f.value.has_not_f64()
            || fields[..i].iter().any(|o| o.name == f.name)
        {
            return malformed;
        }
        match f.name.as_str() {
            "alg" => alg = Some(f.value.as_str().map(str::to_owned)),
            "kid" => kid = Some(f.value.as_str().map(str::to_owned)),
            "typ" => typ = Some(f.value.as_str().map(str::to_owned)),
            "crit" => crit = Some(f.value.string_array()),
            "b64" => {
                b64 = Some(match f.value {
                    Json::Bool(b) => Some(b),
                    _ => None,
                });
            }
            name => others.push(name),
        }
    }
    let Some(Some(alg)) = alg else {
        return malformed;
    };
    let kid = match kid {
        Some(None) => return malformed,
        Some(Some(kid)) => Some(kid),
        None => None,
    };
    let typ = match typ {
        Some(None) => return malformed,
        Some(Some(typ)) => Some(typ),
        None => None,
    };
    let crit = match crit {
        Some(None) => return malformed,
        Some(Some(crit)) => Some(crit),
        None => None,
    };
    let b64 = match b64 {
        Some(None) => return malformed,
        Some(Some(b64)) => Some(b64),
        None => None,
    };
    // `alg` on the allow-list, case-sensitively (RFC 7515 section 4.1.1).
    if !model.algorithms.contains(&alg.as_str()) {
        return Some(Expected::one(ErrorKind::Algorithm));
    }
    // The key by `kid`: every key of the set has one, so no `kid` selects nothing.
    let Some((key_kid, key_alg)) = kid
        .as_deref()
        .and_then(|kid| KEY_TABLE.iter().find(|(k, _)| *k == kid))
    else {
        return Some(Expected::one(ErrorKind::UnknownKey));
    };
    if *key_alg != alg {
        return Some(Expected::one(ErrorKind::Algorithm));
    }
    // RFC 7797 unencoded payloads are refused; `crit` must be non-empty, understood, name
    // members that are present (and not registered ones), without repeats.
    let unsupported = Some(Expected::one(ErrorKind::UnsupportedCritical));
    if b64 == Some(false) {
        return unsupported;
    }
    if let Some(crit) = crit {
        if crit.is_empty() {
            return unsupported;
        }
        for (i, name) in crit.iter().enumerate() {
            if !model.understood.contains(&name.as_str())
                || !others.contains(&name.as_str())
                || crit[..i].contains(name)
            {
                return unsupported;
            }
        }
    }
    // `typ`: a media type, ASCII case-insensitive, `application/` optional (RFC 7515 4.1.9).
    if model.typ_required {
        let matches = typ.is_some_and(|typ| {
            let lower = typ.to_ascii_lowercase();
            let bare = lower.strip_prefix("application/").unwrap_or(&lower);
            bare == "at+jwt"
        });
        if !matches {
            return Some(Expected::one(ErrorKind::WrongType));
        }
    }
    // The signature verifies only with the key that made it.
    if *key_kid != signer.kid() {
        return Some(Expected::one(ErrorKind::InvalidSignature));
    }
    None
}

/// RFC 6749 section 3.3 scope-token characters.
pub(super) fn scope_char(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e)
}

pub(super) fn delimited_scopes(s: &str) -> Option<Vec<String>> {
    s.bytes().all(|b| b == b' ' || scope_char(b)).then(|| {
        s.split(' ')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

pub(super) fn listed_scopes(value: &Json) -> Option<Vec<String>> {
    match value {
        Json::Str(s) => delimited_scopes(s),
        Json::Arr(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|t| !t.is_empty() && t.bytes().all(scope_char))
                    .map(str::to_owned)
            })
            .collect(),
        _ => None,
    }
}

/// A NumericDate in units: a number in `0 ..= MAX_DATE` seconds.
pub(super) fn date(value: &Json) -> Option<i128> {
    match value {
        Json::Num(Num {
            value: NumVal::Units(units),
            ..
        }) => Some(*units).filter(|u| (0..=MAX_DATE * UNITS).contains(u)),
        _ => None,
    }
}

/// Step 5 from the structure.
pub(super) fn claims_verdict(fields: &[Field], model: &Model) -> Expected {
    let mut claims = ExpectedClaims::default();
    let (mut scope, mut scp) = (None, None);
    let mut present: Vec<&str> = Vec::new();
    // One pass in member order: the first member of the wrong type or repeated decides.
    for (i, f) in fields.iter().enumerate() {
        let name = f.name.as_str();
        let value = &f.value;
        let wrong = |claim: &'static str| {
            // Reporting the wrong type can mean reading a number the reader cannot hold.
            let mut allowed = vec![(ErrorKind::InvalidClaim, Some(claim))];
            if value.has_not_f64() {
                allowed.push((ErrorKind::Malformed, None));
            }
            Expected::Rejected(allowed)
        };
        match name {
            "iss" | "sub" | "jti" => {
                let Some(text) = value.as_str() else {
                    return wrong(registered(name));
                };
                let slot = match name {
                    "iss" => &mut claims.iss,
                    "sub" => &mut claims.sub,
                    _ => &mut claims.jti,
                };
                *slot = Some(text.to_owned());
            }
            "aud" => match value {
                Json::Str(s) => claims.aud = vec![s.clone()],
                _ => match value.string_array() {
                    Some(list) => claims.aud = list,
                    None => return wrong("aud"),
                },
            },
            "exp" | "nbf" | "iat" => {
                let Some(units) = date(value) else {
                    return Expected::claim(ErrorKind::InvalidClaim, registered(name));
                };
                let slot = match name {
                    "exp" => &mut claims.exp,
                    "nbf" => &mut claims.nbf,
                    _ => &mut claims.iat,
                };
                *slot = Some(units);
            }
            "roles" if !model.nested_roles => match value.string_array() {
                Some(roles) => claims.roles = roles,
                None => return wrong("roles"),
            },
            "scope" => match value.as_str().and_then(delimited_scopes) {
                Some(scopes) => scope = Some(scopes),
                None => return wrong("scope"),
            },
            "scp" => match listed_scopes(value) {
                Some(scopes) => scp = Some(scopes),
                None => return wrong("scp"),
            },
            _ => {
                if value.has_duplicate() || value.has_not_f64() {
                    return Expected::one(ErrorKind::Malformed);
                }
                claims.extra.insert(name.to_owned(), value.to_value());
            }
        }
        if fields[..i].iter().any(|o| o.name == f.name) {
            return Expected::one(ErrorKind::Malformed);
        }
        present.push(name);
    }
    // Two scope claims that could disagree.
    claims.scopes = match (scope, scp) {
        (Some(_), Some(_)) => return Expected::claim(ErrorKind::InvalidClaim, "scope"),
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => Vec::new(),
    };
    // Roles at `/realm_access/roles`: an array of strings when there.
    if model.nested_roles
        && let Some(Json::Obj(members)) = fields
            .iter()
            .find(|f| f.name == "realm_access")
            .map(|f| &f.value)
        && let Some((_, roles)) = members.iter().find(|(name, _)| name == "roles")
    {
        match roles.string_array() {
            Some(roles) => claims.roles = roles,
            None => return Expected::claim(ErrorKind::InvalidClaim, "roles"),
        }
    }
    if let Some(missing) = model.required.iter().find(|r| !present.contains(r)) {
        return Expected::claim(ErrorKind::MissingClaim, registered(missing));
    }
    let now = i128::from(NOW) * UNITS;
    let leeway = model.leeway_units;
    // RFC 7519: the current time must be before `exp` and not before `nbf` (with leeway).
    if claims.exp.is_some_and(|exp| now >= exp + leeway) {
        return Expected::claim(ErrorKind::Expired, "exp");
    }
    if claims.nbf.is_some_and(|nbf| now < nbf - leeway) {
        return Expected::claim(ErrorKind::NotYetValid, "nbf");
    }
    if claims.iat.is_some_and(|iat| iat > now + leeway) {
        return Expected::claim(ErrorKind::IssuedInFuture, "iat");
    }
    if !claims
        .iss
        .as_deref()
        .is_some_and(|iss| model.issuers.contains(&iss))
    {
        return Expected::claim(ErrorKind::WrongIssuer, "iss");
    }
    if !claims
        .aud
        .iter()
        .any(|aud| model.audiences.contains(&aud.as_str()))
    {
        return Expected::claim(ErrorKind::WrongAudience, "aud");
    }
    Expected::Accepted(Box::new(claims))
}

/// The `'static` name of a registered claim.
pub(super) fn registered(name: &str) -> &'static str {
    ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]
        .into_iter()
        .find(|r| *r == name)
        .expect("a registered claim")
}
