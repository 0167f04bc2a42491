//! Scenario (h): two instances of the login router on one PostgreSQL database (feature
//! `postgres`), each a process of its own (`loadgen instance`), sharing users, sessions, the
//! denylist and the limiter through the database alone. Clients refresh their sessions on
//! alternate instances and call a protected route on alternate instances, while a probe logs
//! out on one instance and times until the other refuses the token.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower_jwt_auth::issuer::TokenIssuer;
use tower_jwt_auth::password::PasswordHasher;
use tower_jwt_auth::router::{AuthRouter, Created, NewUser};
use tower_jwt_auth::sql::{Database, ReplicaOptions};

use crate::client::{self, Sender, Window};
use crate::postgres_server::Postgres;
use crate::server::{BoxError, PASSWORD};
use crate::{Options, fmt_latency, percentile, secs};

const ISSUER: &str = "http://loadgen.test";
const AUDIENCE: &str = "api";

/// What an instance process is given.
#[derive(Serialize, Deserialize)]
pub(crate) struct InstanceArgs {
    database_url: String,
    /// The HMAC secret every instance signs with (base64url).
    secret: Vec<u8>,
}

/// An instance process: the router on the database, `GET /hello` behind its bearer layer;
/// prints its port, serves until stdin closes.
pub(crate) fn serve(args: &InstanceArgs) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = Database::connect(&args.database_url).await?;
        let revocations = db.revocations(ReplicaOptions::default()).await?;
        let issuer = TokenIssuer::hmac(&args.secret, ISSUER, AUDIENCE)?;
        let auth = AuthRouter::builder(issuer)
            .users(Arc::new(db.users()))
            .refresh_store(Arc::new(db.refresh()))
            .revocation_store(Arc::new(revocations))
            .build()?;
        let router = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route_layer(auth.bearer_layer())
            .nest("/auth", auth.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("loadgen instance: {error}");
            }
        });
        Ok::<_, BoxError>(())
    })?;
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    Ok(())
}

fn spawn(args: &InstanceArgs) -> Result<(Child, SocketAddr), BoxError> {
    let (child, line) = crate::spawn_self("instance", &serde_json::to_string(args)?)?;
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|e| format!("an instance did not start ({e}): {line:?}"))?;
    Ok((child, SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
}

/// Sends one request; its status and body.
async fn call(
    sender: &mut Sender,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    form: Option<String>,
) -> Result<(StatusCode, Bytes), BoxError> {
    let auth = bearer
        .map(|token| HeaderValue::try_from(format!("Bearer {token}")))
        .transpose()?;
    let body = form.map(Bytes::from).unwrap_or_default();
    let mut request = client::request(method, path, auth.as_ref(), body);
    request.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    Ok((status, response.into_body().collect().await?.to_bytes()))
}

fn field(body: &[u8], name: &str) -> Result<String, BoxError> {
    let value: serde_json::Value = serde_json::from_slice(body)?;
    value[name]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no {name} in {}", String::from_utf8_lossy(body)).into())
}

/// Logs `user` in (setup: waits out the hasher's 503s, as a client honouring `Retry-After`
/// would); the answer's body.
async fn log_in(sender: &mut Sender, user: &str) -> Result<Bytes, BoxError> {
    for _ in 0..200 {
        let form = Some(login_form(user));
        match call(sender, Method::POST, "/auth/token", None, form).await? {
            (StatusCode::OK, body) => return Ok(body),
            (StatusCode::SERVICE_UNAVAILABLE, _) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (status, _) => return Err(format!("login {user}: {status}").into()),
        }
    }
    Err(format!("login {user}: the hasher stayed busy").into())
}

fn login_form(user: &str) -> String {
    format!(
        "grant_type=password&username={user}&password={}",
        PASSWORD.replace(' ', "+")
    )
}

/// Counts of one kind of request inside the window.
#[derive(Default)]
struct Tally {
    ok: u64,
    other: u64,
    latencies: Vec<u64>,
}

impl Tally {
    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.other += other.other;
        self.latencies.extend(other.latencies);
    }

    fn count(&mut self, window: &Window, started: Instant, ok: bool) {
        let done = Instant::now();
        if done < window.start || done > window.end {
            return;
        }
        if ok {
            self.ok += 1;
            self.latencies
                .push(u64::try_from((done - started).as_nanos()).unwrap_or(u64::MAX));
        } else {
            self.other += 1;
        }
    }
}

/// A client refreshing its session on alternate instances, one refresh after another.
async fn refresher(
    addrs: [SocketAddr; 2],
    user: String,
    window: Window,
) -> Result<Tally, BoxError> {
    let mut senders = [
        client::connect(addrs[0], None).await?,
        client::connect(addrs[1], None).await?,
    ];
    let body = log_in(&mut senders[0], &user).await?;
    let mut token = field(&body, "refresh_token")?;
    let mut tally = Tally::default();
    let mut turn = 1;
    while Instant::now() < window.end {
        let started = Instant::now();
        let form = format!("grant_type=refresh_token&refresh_token={token}");
        let (status, body) = call(
            &mut senders[turn],
            Method::POST,
            "/auth/token",
            None,
            Some(form),
        )
        .await?;
        let ok = status == StatusCode::OK;
        tally.count(&window, started, ok);
        if !ok {
            return Err(format!("a refresh on the other instance answered {status}").into());
        }
        token = field(&body, "refresh_token")?;
        turn = 1 - turn;
    }
    Ok(tally)
}

/// A client calling the protected route on alternate instances with one access token.
async fn caller(addrs: [SocketAddr; 2], user: String, window: Window) -> Result<Tally, BoxError> {
    let mut senders = [
        client::connect(addrs[0], None).await?,
        client::connect(addrs[1], None).await?,
    ];
    let body = log_in(&mut senders[1], &user).await?;
    let token = field(&body, "access_token")?;
    let mut tally = Tally::default();
    let mut turn = 0;
    while Instant::now() < window.end {
        let started = Instant::now();
        let (status, _) = call(
            &mut senders[turn],
            Method::GET,
            "/hello",
            Some(&token),
            None,
        )
        .await?;
        tally.count(&window, started, status == StatusCode::OK);
        turn = 1 - turn;
    }
    Ok(tally)
}

/// Logs in on instance 0, logs out there, and times until instance 1 refuses the token; again
/// until the window ends. The delays, in nanoseconds.
async fn revocation_probe(
    addrs: [SocketAddr; 2],
    user: String,
    window: Window,
) -> Result<Vec<u64>, BoxError> {
    let mut a = client::connect(addrs[0], None).await?;
    let mut b = client::connect(addrs[1], None).await?;
    let mut delays = Vec::new();
    while Instant::now() < window.end {
        let body = log_in(&mut a, &user).await?;
        let token = field(&body, "access_token")?;
        let (status, _) = call(&mut b, Method::GET, "/hello", Some(&token), None).await?;
        if status != StatusCode::OK {
            return Err(
                format!("probe: the other instance answered {status} before the logout").into(),
            );
        }
        let (status, _) = call(&mut a, Method::POST, "/auth/logout", Some(&token), None).await?;
        if status != StatusCode::NO_CONTENT {
            return Err(format!("probe logout: {status}").into());
        }
        let logged_out = Instant::now();
        loop {
            let (status, _) = call(&mut b, Method::GET, "/hello", Some(&token), None).await?;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            if logged_out.elapsed() > Duration::from_secs(10) {
                return Err(
                    "the other instance still accepts a logged-out token after 10 s".into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        delays.push(u64::try_from(logged_out.elapsed().as_nanos()).unwrap_or(u64::MAX));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(delays)
}

/// Scenario (h).
pub(crate) async fn run(options: &Options) -> Result<(), BoxError> {
    let Some(server) = Postgres::start("loadgen scenario (h)") else {
        println!(
            "\n### (h) two instances on one PostgreSQL\n\nSkipped: PostgreSQL (initdb) is not installed."
        );
        return Ok(());
    };
    let url = server.url();
    let db = Database::connect(&url).await?;
    db.migrate().await?;
    // Users with one password, hashed once: the scenario measures the stores, not argon2.
    let clients = options.instance_clients;
    let hash = PasswordHasher::new().hash(PASSWORD).await?;
    let users = db.users();
    for i in 0..(2 * clients + 1) {
        let user = NewUser {
            username: format!("pg-{i}"),
            email: None,
            password_hash: hash.clone(),
            roles: vec!["user".to_owned()],
            scopes: vec!["items:read".to_owned()],
        };
        if !matches!(
            tower_jwt_auth::router::UserStore::create(&users, user).await?,
            Created::Created(_)
        ) {
            return Err("could not create the scenario's users".into());
        }
    }
    let mut secret = vec![0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
    let args = InstanceArgs {
        database_url: url,
        secret,
    };
    let (mut first, a) = spawn(&args)?;
    let (mut second, b) = spawn(&args)?;
    let addrs = [a, b];
    let window = Window::after(secs(1.0), secs(options.instance_secs));
    let refreshers: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(refresher(addrs, format!("pg-{i}"), window)))
        .collect();
    let callers: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(caller(addrs, format!("pg-{}", clients + i), window)))
        .collect();
    let probe = tokio::spawn(revocation_probe(
        addrs,
        format!("pg-{}", 2 * clients),
        window,
    ));
    let (mut refreshes, mut calls) = (Tally::default(), Tally::default());
    for task in refreshers {
        refreshes.merge(task.await??);
    }
    for task in callers {
        calls.merge(task.await??);
    }
    let mut delays = probe.await??;
    drop(first.stdin.take());
    drop(second.stdin.take());
    let _ = first.wait();
    let _ = second.wait();
    refreshes.latencies.sort_unstable();
    calls.latencies.sort_unstable();
    delays.sort_unstable();
    let seconds = options.instance_secs;
    println!("\n### (h) two instances on one PostgreSQL\n");
    println!(
        "Two router processes on one database (no Redis): {clients} clients refresh their \
         sessions on alternate instances, {clients} call `GET /hello` behind `bearer_layer()` on \
         alternate instances, and a probe logs out on one instance and times until the other \
         refuses the token. {seconds} s measured after 1 s of warm-up.\n"
    );
    println!("| load | per second | p50 | p99 | refused |");
    println!("|---|---|---|---|---|");
    for (name, tally) in [
        ("refresh, alternate instances", &refreshes),
        ("`GET /hello`, alternate instances", &calls),
    ] {
        println!(
            "| {name} | {:.0} | {} | {} | {} |",
            tally.ok as f64 / seconds,
            fmt_latency(percentile(&tally.latencies, 0.50)),
            fmt_latency(percentile(&tally.latencies, 0.99)),
            tally.other
        );
    }
    println!(
        "\nLogout on one instance refused by the other: {} probes, p50 {}, max {} (bound: the \
         replica's poll interval, 500 ms, or a PostgreSQL notification, whichever comes first).",
        delays.len(),
        fmt_latency(percentile(&delays, 0.50)),
        fmt_latency(delays.last().copied().unwrap_or(0)),
    );
    drop(server);
    Ok(())
}
