//! Replays every committed fuzz corpus input (fuzz/corpus/*) through the same harness the
//! cargo-fuzz targets use, so a stable `cargo test` covers what fuzzing found.

// The fuzz crate's modules sit at this binary's root (see main.rs), where they find each other
// as they do in the fuzz crate.
use crate::{harness, signed_claims};

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", "corpus", target]
        .iter()
        .collect();
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn verify_token_corpus_replays() {
    let inputs = inputs("verify_token");
    assert!(inputs.len() >= 40, "seed corpus went missing");
    for (name, data) in &inputs {
        harness::verify_token(data);
        // The named seeds keep their meaning: valid ones verify, the rest are rejected.
        let verdict = harness::verifier().verify(&String::from_utf8_lossy(data));
        if name.starts_with("valid_") {
            assert!(verdict.is_ok(), "{name}: {verdict:?}");
        } else if !name.chars().all(|c| c.is_ascii_hexdigit()) {
            assert!(verdict.is_err(), "{name} was accepted");
        }
    }
}

#[test]
fn jwks_document_corpus_replays() {
    let inputs = inputs("jwks_document");
    assert!(inputs.len() >= 20, "seed corpus went missing");
    for (name, data) in &inputs {
        harness::jwks_document(data);
        let loaded = tower_jwt_auth::KeySet::from_jwks(data);
        match name.as_str() {
            "public" | "oct" | "single_rsa2048" | "single_p256" | "single_p384"
            | "single_ed25519" => {
                assert!(loaded.is_ok(), "{name}: {loaded:?}")
            }
            "mixed" | "duplicate_kid" | "private" | "off_curve" | "duplicate_member"
            | "not_array" | "empty" => assert!(loaded.is_err(), "{name} loaded"),
            _ => {}
        }
    }
}

#[test]
fn signed_claims_corpus_replays() {
    let inputs = inputs("signed_claims");
    assert!(inputs.len() >= 30, "seed corpus went missing");
    for (name, data) in &inputs {
        // The oracle and the verifier agree (the harness panics otherwise).
        signed_claims::signed_claims(data);
        // The named seeds keep their meaning: `<policy>_<signer>_<outcome>`.
        if !name.chars().all(|c| c.is_ascii_hexdigit()) {
            let case = signed_claims::case(data).unwrap();
            let outcome = signed_claims::check(&case).expected.label();
            let label = format!("{:?}_{:?}_{outcome}", case.policy, case.signer);
            assert_eq!(label.to_ascii_lowercase(), *name);
        }
    }
}

/// The oracle itself, on hand-built cases: it must say what the rules say, or the target
/// would only check the verifier against a copy of its own mistakes.
#[test]
fn signed_claims_oracle_on_hand_built_cases() {
    use signed_claims::{
        AlgSpec, Case, ClaimsSpec, DateBase, DateSpec, Duplicate, Escape, Expected, ItemSpec, Json,
        KidSpec, Layout, Member, NameSpec, NumForm, Optional, PolicyChoice, RealmSpec, ScopeSpec,
        ScopeToken, ScpItem, ScpSpec, SignerChoice, Space, TextSpec, TypSpec,
    };
    use tower_jwt_auth::ErrorKind;

    let verdict = |case: &Case| signed_claims::check(case).expected;
    let rejected = |kind, claim: Option<&'static str>| Expected::Rejected(vec![(kind, claim)]);

    // The all-default case (what empty input decodes to) is a valid access token.
    let valid = Case::default();
    assert_eq!(verdict(&valid).label(), "accepted");
    assert!(signed_claims::case(b"").is_some_and(|c| verdict(&c).label() == "accepted"));

    // Escapes everywhere, names included, and a nested roles list: still accepted, roles read.
    let escaped = Case {
        claims: ClaimsSpec {
            sub: Member::Typical(TextSpec::Pool(4)),
            realm_access: Optional::Typical(RealmSpec {
                roles: Member::Typical(vec![ItemSpec::Text(TextSpec::Pool(3))]),
                extras: vec![],
            }),
            scope: Optional::Typical(ScopeSpec {
                tokens: vec![ScopeToken::Pool(0), ScopeToken::Pool(4)],
                spaces: 7,
            }),
            ..ClaimsSpec::default()
        },
        claims_layout: Layout {
            escape: Escape::All,
            escape_names: true,
            space: Space::Lines,
        },
        ..Case::default()
    };
    let rendered = signed_claims::check(&escaped);
    assert!(rendered.payload.contains(r"\u0072\u0065\u0061\u006C\u006D"));
    let claims = signed_claims::PolicyChoice::Access
        .verifier()
        .verify(&rendered.token)
        .unwrap();
    assert_eq!(claims.roles(), ["ünïcødé ✓"]);
    assert_eq!(claims.subject(), Some("😀 astral"));

    // Exactly at the edges, in 1/256 s: `exp` + leeway 60 s reached is expired, one unit
    // before is not; the plain policy's 1.5 s leeway the same way.
    let date = |offset, frac, form| DateSpec {
        base: DateBase::Now,
        offset,
        frac,
        form,
        negate: false,
    };
    let exp_at = |policy, offset, frac| Case {
        policy,
        claims: ClaimsSpec {
            exp: Member::Typical(date(offset, frac, NumForm::Decimal(0))),
            nbf: Optional::Typical(date(0, 0, NumForm::Int)),
            ..ClaimsSpec::default()
        },
        ..Case::default()
    };
    assert_eq!(
        verdict(&exp_at(PolicyChoice::Access, -60, 0)),
        rejected(ErrorKind::Expired, Some("exp"))
    );
    assert_eq!(
        verdict(&exp_at(PolicyChoice::Access, -61, 255)).label(),
        "expired"
    );
    assert_eq!(
        verdict(&exp_at(PolicyChoice::Access, -60, 1)).label(),
        "accepted"
    );
    assert_eq!(
        verdict(&exp_at(PolicyChoice::Plain, -2, 128)).label(),
        "expired"
    );
    assert_eq!(
        verdict(&exp_at(PolicyChoice::Plain, -2, 129)).label(),
        "accepted"
    );

    // `nbf` and `iat` at their edges: exactly now + leeway passes, one unit later does not.
    let at_edge = |frac: u8| {
        let form = NumForm::Exponent {
            upper: false,
            plus: false,
            integer_mantissa: true,
        };
        date(60, frac, form)
    };
    for (frac, nbf, iat) in [
        (0, "accepted", "accepted"),
        (1, "notyetvalid", "issuedinfuture"),
    ] {
        let mut case = Case::default();
        case.claims.nbf = Optional::Typical(at_edge(frac));
        assert_eq!(
            verdict(&case).label(),
            nbf,
            "nbf {frac}/256 s past the edge"
        );
        let mut case = Case::default();
        case.claims.iat = Member::Typical(at_edge(frac));
        assert_eq!(
            verdict(&case).label(),
            iat,
            "iat {frac}/256 s past the edge"
        );
    }

    // Exponent forms and the latest date: `iat` far in the future, written as 2.53402300799E+11.
    let far = Case {
        claims: ClaimsSpec {
            iat: Member::Typical(DateSpec {
                base: DateBase::Max,
                form: NumForm::Exponent {
                    upper: true,
                    plus: true,
                    integer_mantissa: false,
                },
                ..DateSpec::default()
            }),
            ..ClaimsSpec::default()
        },
        ..Case::default()
    };
    let rendered = signed_claims::check(&far);
    assert!(
        rendered.payload.contains("2.53402300799E+11"),
        "{}",
        rendered.payload
    );
    assert_eq!(
        rendered.expected,
        rejected(ErrorKind::IssuedInFuture, Some("iat"))
    );
    // One second later it is no date at all.
    let beyond = Case {
        claims: ClaimsSpec {
            iat: Member::Typical(DateSpec {
                base: DateBase::Max,
                offset: 1,
                ..DateSpec::default()
            }),
            ..ClaimsSpec::default()
        },
        ..Case::default()
    };
    assert_eq!(
        verdict(&beyond),
        rejected(ErrorKind::InvalidClaim, Some("iat"))
    );

    // A duplicate claim written with an escaped name is still a duplicate, found where the
    // copy is read; a wrongly typed claim read before it is reported instead.
    // Members: iss sub aud exp iat jti (`jti` wrongly typed); the copy is of `sub`.
    let duplicate = |at| Case {
        claims: ClaimsSpec {
            jti: Member::Json(Json::Bool(true)),
            duplicate: Some(Duplicate {
                member: 1,
                at,
                escape_name: true,
                value: None,
            }),
            ..ClaimsSpec::default()
        },
        ..Case::default()
    };
    assert_eq!(
        verdict(&duplicate(6)),
        rejected(ErrorKind::InvalidClaim, Some("jti"))
    );
    assert_eq!(verdict(&duplicate(0)), rejected(ErrorKind::Malformed, None));
    let mut reversed = duplicate(6);
    reversed.claims.order = 128;
    // Rotated by two and reversed: sub iss jti iat exp aud, then the copy of `iss`.
    assert_eq!(
        verdict(&reversed),
        rejected(ErrorKind::InvalidClaim, Some("jti"))
    );

    // `scope` and `scp` together are refused; `scp` alone as an array is read.
    let scopes = |scope, scp| Case {
        claims: ClaimsSpec {
            scope,
            scp,
            ..ClaimsSpec::default()
        },
        ..Case::default()
    };
    let list = || {
        Optional::Typical(ScpSpec::List(vec![
            ScpItem::Token(ScopeToken::Pool(2)),
            ScpItem::Token(ScopeToken::Pool(3)),
        ]))
    };
    let string = || {
        Optional::Typical(ScopeSpec {
            tokens: vec![ScopeToken::Pool(0)],
            spaces: 0,
        })
    };
    assert_eq!(
        verdict(&scopes(string(), list())),
        rejected(ErrorKind::InvalidClaim, Some("scope"))
    );
    let rendered = signed_claims::check(&scopes(Optional::Absent, list()));
    let claims = PolicyChoice::Access
        .verifier()
        .verify(&rendered.token)
        .unwrap();
    assert_eq!(claims.scopes(), ["openid", "a"]);
    let quote = Case {
        claims: ClaimsSpec {
            scp: Optional::Typical(ScpSpec::List(vec![ScpItem::Token(ScopeToken::Pool(5))])),
            ..ClaimsSpec::default()
        },
        ..Case::default()
    };
    assert_eq!(
        verdict(&quote),
        rejected(ErrorKind::InvalidClaim, Some("scp"))
    );

    // Header rules, in the documented order: `alg` before `kid`, both before `typ`.
    let header = |alg, kid, typ| {
        let mut case = Case::default();
        case.header.alg = alg;
        case.header.kid = kid;
        case.header.typ = typ;
        verdict(&case)
    };
    assert_eq!(
        header(AlgSpec::Named(7), KidSpec::Missing, TypSpec::Missing),
        rejected(ErrorKind::Algorithm, None)
    );
    assert_eq!(
        header(AlgSpec::Signer, KidSpec::Missing, TypSpec::Missing),
        rejected(ErrorKind::UnknownKey, None)
    );
    assert_eq!(
        header(AlgSpec::Signer, KidSpec::Signer, TypSpec::Named(0)),
        rejected(ErrorKind::WrongType, None)
    );
    assert_eq!(
        header(AlgSpec::Signer, KidSpec::Signer, TypSpec::AtJwt(4)).label(),
        "accepted"
    );
    // A key of another algorithm named with its own algorithm: the signature fails.
    assert_eq!(
        header(AlgSpec::Named(1), KidSpec::Named(1), TypSpec::AtJwt(0)),
        rejected(ErrorKind::InvalidSignature, None)
    );
    // The plain policy allows fewer algorithms: RS256 is refused before the key is looked up.
    let mut plain_rs = Case {
        policy: PolicyChoice::Plain,
        ..Case::default()
    };
    plain_rs.header.alg = AlgSpec::Named(1);
    plain_rs.header.kid = KidSpec::Named(1);
    assert_eq!(verdict(&plain_rs), rejected(ErrorKind::Algorithm, None));
    // Asymmetric signers sign correctly too.
    for signer in [SignerChoice::EdDsa, SignerChoice::Es256] {
        let case = Case {
            signer,
            ..Case::default()
        };
        assert_eq!(verdict(&case).label(), "accepted");
    }
    // A header extension listed in `crit` must be understood and present.
    let mut crit = Case::default();
    crit.header.crit = Some(signed_claims::CritSpec::Names(vec![NameSpec::Pool(0)]));
    assert_eq!(
        verdict(&crit),
        rejected(ErrorKind::UnsupportedCritical, None)
    );
    crit.header.extras = vec![(NameSpec::Pool(0), Json::Null)];
    assert_eq!(verdict(&crit).label(), "accepted");
}
