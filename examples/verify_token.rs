//! Verifies a token against the keys of a JWKS file and prints its claims, or why it was
//! rejected.
//!
//! ```text
//! cargo run --example verify_token -- <jwks-file> <token | @token-file>
//!     [--issuer URL] [--audience AUD] [--type at+jwt] [--roles-claim /pointer]
//! ```
//!
//! Try it with the repository's test keys and demo token:
//!
//! ```text
//! cargo run --example verify_token -- tests/data/keys/public.jwks @tests/data/demo.jwt \
//!     --issuer https://issuer.example --audience api --type at+jwt
//! ```
//!
//! Without `--issuer` or `--audience` any value is accepted, and the example says so.
//! Exit status: 0 verified, 1 rejected, 2 usage or configuration error.

use std::process::ExitCode;

use tower_jwt_auth::{ConfigError, KeySet, Verifier};

struct Args {
    jwks: String,
    token: String,
    issuer: Option<String>,
    audience: Option<String>,
    typ: Option<String>,
    roles_claim: Option<String>,
}

const USAGE: &str = "usage: verify_token <jwks-file> <token | @token-file> \
                     [--issuer URL] [--audience AUD] [--type TYP] [--roles-claim POINTER]";

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let (mut issuer, mut audience, mut typ, mut roles_claim) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--issuer" => &mut issuer,
            "--audience" => &mut audience,
            "--type" => &mut typ,
            "--roles-claim" => &mut roles_claim,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}\n{USAGE}"));
            }
            _ => {
                positional.push(arg);
                continue;
            }
        };
        *slot = Some(
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?,
        );
    }
    let [jwks, token] = <[String; 2]>::try_from(positional).map_err(|_| USAGE.to_owned())?;
    let token = match token.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|err| format!("{path}: {err}"))?
            .trim()
            .to_owned(),
        None => token,
    };
    Ok(Args {
        jwks,
        token,
        issuer,
        audience,
        typ,
        roles_claim,
    })
}

fn build_verifier(args: &Args) -> Result<Verifier, String> {
    let jwks = std::fs::read(&args.jwks).map_err(|err| format!("{}: {err}", args.jwks))?;
    let keys = KeySet::from_jwks(&jwks).map_err(|err| format!("{}: {err}", args.jwks))?;
    for skipped in keys.skipped() {
        eprintln!(
            "note: skipped key {:?}: {}",
            skipped.kid().unwrap_or("(no kid)"),
            skipped.reason()
        );
    }
    let mut builder = Verifier::builder(keys);
    builder = match &args.issuer {
        Some(issuer) => builder.issuer(issuer),
        None => {
            eprintln!("warning: no --issuer given, accepting any iss");
            builder.accept_any_issuer()
        }
    };
    builder = match &args.audience {
        Some(audience) => builder.audience(audience),
        None => {
            eprintln!("warning: no --audience given, accepting any aud");
            builder.accept_any_audience()
        }
    };
    if let Some(typ) = &args.typ {
        builder = builder
            .require_type(typ)
            .map_err(|err: ConfigError| err.to_string())?;
    }
    if let Some(path) = &args.roles_claim {
        builder = builder.roles_claim(path).map_err(|err| err.to_string())?;
    }
    builder.build().map_err(|err| err.to_string())
}

fn main() -> ExitCode {
    let verifier = match parse_args().and_then(|args| Ok((build_verifier(&args)?, args.token))) {
        Ok(ready) => ready,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let (verifier, token) = verifier;
    match verifier.verify(&token) {
        Ok(claims) => {
            let exp = claims.expires_at().map(|exp| exp.as_secs());
            println!("verified");
            println!("  sub    {}", claims.subject().unwrap_or("-"));
            println!("  iss    {}", claims.issuer().unwrap_or("-"));
            println!("  aud    {}", claims.audience().join(", "));
            println!(
                "  exp    {}",
                exp.map_or("-".to_owned(), |exp| exp.to_string())
            );
            println!("  jti    {}", claims.jwt_id().unwrap_or("-"));
            println!("  roles  {}", claims.roles().join(", "));
            println!("  scope  {}", claims.scopes().as_str());
            for (name, value) in claims.extra() {
                println!("  {name:6} {value}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("rejected: {err} [{}]", err.kind().as_str());
            ExitCode::from(1)
        }
    }
}
