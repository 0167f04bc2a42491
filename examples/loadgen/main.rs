//! End-to-end load test: the same small axum app without authentication and behind
//! `BearerAuth`, driven over loopback by a real HTTP client in a second process, and the login
//! router under a flood of password logins.
//!
//! ```text
//! cargo run --release --example loadgen                       # everything, about 90 s
//! cargo run --release --example loadgen -- --scenarios a,b    # some of it
//! cargo run --release --example loadgen -- --help
//! ```
//!
//! The process starts a copy of itself (`loadgen serve`) as the server: one tokio runtime (a
//! worker per core) serving each app on its own loopback port, with a pool of access tokens
//! of distinct users. This process is the load generator. Scenarios:
//!
//! | | app |
//! |---|---|
//! | (a) | `GET /hello`, no authentication: the baseline |
//! | (b) | the same behind `BearerAuthLayer`, HS256 tokens |
//! | (c) | the same, ES256 tokens |
//! | (d) | ES256 with the verifier's cache on (`VerifierBuilder::cache`, 10,000 tokens) |
//! | (e) | `AuthRouter` (in-memory stores, default `PasswordHasher`, `RateLimitLogin`), `/health` and `GET /hello` behind `auth.bearer_layer()` |
//! | (f) | HS256 with the verifier's cache on: reported beside (b), to show what the cache does for HMAC |
//! | (n) | the app of (a), sent the tokens of (b) (ignored): what the bytes of the header cost, beside what the layer costs |
//! | (j) | jwt-authorizer's layer on the same route (HS256, issuer and audience checked), a separate process started by hand from `benches/jwt-authorizer` (`--peer`), the tokens of (b) |
//! | (p) | the middleware users write by hand today: `axum::middleware::from_fn` calling `jsonwebtoken::decode` (HS256, a `Validation` built per request, the claims into the extensions), the tokens of (b) |
//! | (g) | fairness: one user logging in once a second, alone, then while K clients (each its own address and account) loop valid logins ignoring `Retry-After`; against the router with `RateLimitLogin`, and without it (the hasher's fair admission alone) |
//! | (h) | two router processes on one PostgreSQL database (SQL stores, no Redis): refreshes and protected calls on alternate instances, and how long a logout on one takes to be refused by the other (`--features postgres`; a throw-away cluster, as the tests start) |
//!
//! (a) to (d), (f), (j), (n) and (p) are closed loops: a fixed number of keep-alive HTTP/1.1 connections, each
//! sending its next request when the previous answer is read, every request timed from
//! hand-off to the last byte of its body. A run interleaves them: in each round every scenario
//! runs for the same time (after a short warm-up that is not counted), in an order that
//! rotates between rounds, so a slow patch of a shared machine lands on all of them. The
//! headline is each scenario's throughput as a ratio to (a), measured in the same run.
//!
//! (e) probes `/health` and the protected `GET /hello` at a fixed rate, first with the server
//! idle and then while 64 clients (each its own user, and its own 127.0.0.x address so the
//! login limiter sees separate people) log in again and again, and compares the probes' p99.
//!
//! The output is Markdown. Progress goes to stderr.

mod client;
#[cfg(feature = "postgres")]
mod instances;
#[cfg(feature = "postgres")]
#[path = "../../tests/common/postgres_server.rs"]
#[allow(dead_code, clippy::unwrap_used)]
mod postgres_server;
mod server;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;

use client::Window;
use server::{BoxError, Ready, ServeArgs};

const USAGE: &str = "\
usage: cargo run --release --example loadgen -- [options]

  --scenarios LIST       which of a,b,c,d,e,f,g,h,j,n,p to run (default: all; h needs
                         --features postgres, j needs --peer)
  --peer ADDR            scenario (j): jwt-authorizer's app from benches/jwt-authorizer,
                         listening there with the same LOADGEN_HS256_SECRET (see below)
  --peer-pid PID         that process, for its CPU per request
  --connections N        connections of the closed loops (default 32)
  --duration SECS        measured seconds per scenario, split over the rounds (default 9)
  --rounds N             interleaved rounds (default 3)
  --warmup SECS          uncounted seconds before each round of each scenario (default 0.5)
  --client-threads N     worker threads of the load generator (default: cores)
  --tokens N             distinct users (and tokens) per token pool (default 1000)
  --cache-capacity N     tokens (d)'s verification cache holds (default 10000)
  --idle SECS            login test: probe seconds with the server idle (default 8)
  --flood SECS           login test: probe seconds during the flood (default 10)
  --flood-clients N      login test: concurrent password logins (default 64)
  --login-rounds N       login test: idle/flood alternations (default 2)
  --probe-rate N         login test: probe requests per second per route (default 200)
  --hasher-permits N     login test: PasswordHasher max_concurrent (default: the crate's)
  --hasher-queue N       login test: PasswordHasher max_queued (default: the crate's)
  --hasher-threads T     login test: PasswordHasher threads: idle, normal or blocking
                         (default: the crate's, idle)
  --ignore-retry-after   login test: flooding clients retry at once after 503/429
  --fair-abusers N       fairness test: clients looping valid logins (default 8)
  --fair-secs SECS       fairness test: seconds per phase (default 20)
  --instance-clients N   two-instance test: refreshing clients, and as many callers
                         (default 16)
  --instance-secs SECS   two-instance test: measured seconds (default 10)

LOADGEN_HS256_SECRET (at least 32 characters) makes the HS256 tokens verifiable by (j)'s
server, which reads the same variable; without it the secret is random.
";

#[derive(Clone, Debug)]
struct Options {
    scenarios: Vec<char>,
    /// Scenario (j)'s server, started by hand.
    peer: Option<SocketAddr>,
    /// Its process, for its CPU.
    peer_pid: Option<u32>,
    connections: usize,
    duration: f64,
    rounds: usize,
    warmup: f64,
    client_threads: usize,
    tokens: usize,
    cache_capacity: usize,
    idle: f64,
    flood: f64,
    flood_clients: usize,
    login_rounds: usize,
    probe_rate: u32,
    hasher_permits: Option<usize>,
    hasher_queue: Option<usize>,
    hasher_threads: Option<String>,
    ignore_retry_after: bool,
    fair_abusers: usize,
    fair_secs: f64,
    instance_clients: usize,
    instance_secs: f64,
}

impl Options {
    fn parse(args: impl Iterator<Item = String>) -> Result<Self, BoxError> {
        let cores = cores();
        let mut options = Self {
            scenarios: if cfg!(feature = "postgres") {
                vec!['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'n', 'p']
            } else {
                vec!['a', 'b', 'c', 'd', 'e', 'f', 'g', 'n', 'p']
            },
            peer: None,
            peer_pid: None,
            connections: 32,
            duration: 9.0,
            rounds: 3,
            warmup: 0.5,
            client_threads: cores,
            tokens: 1000,
            cache_capacity: 10_000,
            idle: 8.0,
            flood: 10.0,
            flood_clients: 64,
            login_rounds: 2,
            probe_rate: 200,
            hasher_permits: None,
            hasher_queue: None,
            hasher_threads: None,
            ignore_retry_after: false,
            fair_abusers: 8,
            fair_secs: 20.0,
            instance_clients: 16,
            instance_secs: 10.0,
        };
        let mut args = args.peekable();
        let mut explicit = false;
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--scenarios" => {
                    explicit = true;
                    options.scenarios = value()?
                        .split(',')
                        .map(|s| match s.trim() {
                            one @ ("a" | "b" | "c" | "d" | "e" | "f" | "g" | "j" | "n" | "p") => {
                                Ok(one.chars().next().unwrap_or('a'))
                            }
                            "h" if cfg!(feature = "postgres") => Ok('h'),
                            "h" => Err("scenario h needs `--features postgres`".to_owned()),
                            other => Err(format!("unknown scenario {other:?}")),
                        })
                        .collect::<Result<_, _>>()?;
                }
                "--peer" => options.peer = Some(value()?.parse()?),
                "--peer-pid" => options.peer_pid = Some(value()?.parse()?),
                "--connections" => options.connections = value()?.parse()?,
                "--duration" => options.duration = value()?.parse()?,
                "--rounds" => options.rounds = value()?.parse()?,
                "--warmup" => options.warmup = value()?.parse()?,
                "--client-threads" => options.client_threads = value()?.parse()?,
                "--tokens" => options.tokens = value()?.parse()?,
                "--cache-capacity" => options.cache_capacity = value()?.parse()?,
                "--idle" => options.idle = value()?.parse()?,
                "--flood" => options.flood = value()?.parse()?,
                "--flood-clients" => options.flood_clients = value()?.parse()?,
                "--fair-abusers" => options.fair_abusers = value()?.parse()?,
                "--fair-secs" => options.fair_secs = value()?.parse()?,
                "--instance-clients" => options.instance_clients = value()?.parse()?,
                "--instance-secs" => options.instance_secs = value()?.parse()?,
                "--login-rounds" => options.login_rounds = value()?.parse()?,
                "--probe-rate" => options.probe_rate = value()?.parse()?,
                "--hasher-permits" => options.hasher_permits = Some(value()?.parse()?),
                "--hasher-queue" => options.hasher_queue = Some(value()?.parse()?),
                "--hasher-threads" => options.hasher_threads = Some(value()?),
                "--ignore-retry-after" => options.ignore_retry_after = true,
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown option {other:?}\n{USAGE}").into()),
            }
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if options.connections == 0
            || options.rounds == 0
            || options.client_threads == 0
            || options.tokens == 0
            || options.flood_clients == 0
            || options.login_rounds == 0
            || options.probe_rate == 0
            || !positive(options.duration)
            || !positive(options.idle)
            || !positive(options.flood)
            || !positive(options.fair_secs)
            || !positive(options.instance_secs)
            || options.instance_clients == 0
            || !(options.warmup.is_finite() && options.warmup >= 0.0)
        {
            return Err("counts and durations must be positive".into());
        }
        if options.peer.is_some() && !options.has('j') && !explicit {
            options.scenarios.push('j');
        }
        if options.has('j') && options.peer.is_none() {
            return Err("scenario j needs --peer".into());
        }
        Ok(options)
    }

    fn has(&self, scenario: char) -> bool {
        self.scenarios.contains(&scenario)
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    #[cfg(feature = "postgres")]
    if first.as_deref() == Some("instance") {
        let instance: instances::InstanceArgs =
            serde_json::from_str(&args.next().ok_or("instance needs its arguments")?)?;
        return instances::serve(&instance);
    }
    if first.as_deref() == Some("serve") {
        let serve: ServeArgs =
            serde_json::from_str(&args.next().ok_or("serve needs its arguments")?)?;
        return server::run(&serve);
    }
    let options = Options::parse(first.into_iter().chain(args))?;
    let (mut child, ready) = spawn_server(&options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads)
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(run(&options, &ready, child.id()));
    // Closing the server's stdin ends it.
    drop(child.stdin.take());
    let _ = child.wait();
    outcome
}

/// Starts `loadgen serve` and reads its [`Ready`] line.
fn spawn_server(options: &Options) -> Result<(Child, Ready), BoxError> {
    let serve = ServeArgs {
        token_users: options.tokens,
        login_users: if options.has('e') {
            options.flood_clients
        } else {
            0
        },
        fair_users: if options.has('g') {
            options.fair_abusers + 1
        } else {
            0
        },
        hasher_permits: options.hasher_permits,
        hasher_queue: options.hasher_queue,
        hasher_threads: options.hasher_threads.clone(),
        cache_capacity: options.cache_capacity,
    };
    eprintln!(
        "starting the server process (creating {} users with argon2id)...",
        serve.login_users + 2 * serve.fair_users
    );
    let (child, line) = spawn_self("serve", &serde_json::to_string(&serve)?)?;
    let ready: Ready = serde_json::from_str(&line)
        .map_err(|e| format!("the server process did not start ({e})"))?;
    Ok((child, ready))
}

/// Starts a copy of this program as `subcommand arguments`, its stdin a pipe (closing it ends
/// the copy), and reads the first line it prints.
fn spawn_self(subcommand: &str, arguments: &str) -> Result<(Child, String), BoxError> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(subcommand)
        .arg(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    Ok((child, line))
}

fn port(ready: &Ready, scenario: char) -> Result<SocketAddr, BoxError> {
    port_named(ready, &scenario.to_string())
}

fn port_named(ready: &Ready, scenario: &str) -> Result<SocketAddr, BoxError> {
    let port = ready
        .ports
        .iter()
        .find(|(name, _)| name == scenario)
        .map(|(_, port)| *port)
        .ok_or_else(|| format!("the server has no scenario ({scenario})"))?;
    Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
}

async fn run(options: &Options, ready: &Ready, server_pid: u32) -> Result<(), BoxError> {
    print_header(options, ready);
    let closed: Vec<Scenario> = [
        Scenario::new('a', "no auth", None, None),
        Scenario::new(
            'b',
            "`BearerAuth` HS256",
            Some(&ready.hs256_tokens),
            Some(0.85),
        ),
        Scenario::new('c', "`BearerAuth` ES256", Some(&ready.es256_tokens), None),
        Scenario::new(
            'd',
            "`BearerAuth` ES256, cache",
            Some(&ready.es256_tokens),
            Some(0.92),
        ),
        Scenario::new(
            'f',
            "`BearerAuth` HS256, cache",
            Some(&ready.hs256_tokens),
            Some(0.92),
        ),
        Scenario::new(
            'n',
            "no auth, the token sent (ignored)",
            Some(&ready.hs256_tokens),
            None,
        ),
        Scenario::new(
            'j',
            "jwt-authorizer 0.15 HS256 (`--peer`)",
            Some(&ready.hs256_tokens),
            None,
        ),
        Scenario::new(
            'p',
            "by hand: `from_fn` + `jsonwebtoken::decode` HS256",
            Some(&ready.hs256_tokens),
            None,
        ),
    ]
    .into_iter()
    .filter(|s| options.has(s.letter))
    .collect();
    if !closed.is_empty() {
        closed_loops(options, ready, server_pid, closed).await?;
    }
    if options.has('e') {
        login_under_load(options, ready, server_pid).await?;
    }
    if options.has('g') {
        fairness(options, ready).await?;
    }
    #[cfg(feature = "postgres")]
    if options.has('h') {
        instances::run(options).await?;
    }
    Ok(())
}

/// Scenario (g): one user logging in once a second, alone and while `--fair-abusers` clients
/// loop valid logins on their own accounts (ignoring `Retry-After`), against the router with
/// its limiter and without it.
async fn fairness(options: &Options, ready: &Ready) -> Result<(), BoxError> {
    let limited = port(ready, 'g')?;
    let unlimited = port_named(ready, "g-unlimited")?;
    let k = options.fair_abusers;
    let (abusers, victim) = ready.fair_users.split_at(k);
    let victim = victim.first().ok_or("no victim user")?.clone();
    let distinct = client::distinct_sources_work(limited).await;
    let victim_source = distinct.then(|| client::source_address(k + 5));
    let phases = [
        ("alone", limited, false),
        ("abused, `RateLimitLogin` on", limited, true),
        (
            "abused, `RateLimitLogin` off (fair hasher only)",
            unlimited,
            true,
        ),
    ];
    println!("\n### (g) fairness: one user's logins while {k} clients loop valid logins\n");
    println!(
        "The user logs in once a second from its own address, {} s per phase; each abusing \
         client logs in as its own user from its own address{}, again and again, ignoring \
         `Retry-After`.\n",
        options.fair_secs,
        if distinct {
            ""
        } else {
            " (not here: one address for all)"
        }
    );
    println!(
        "| phase | user's logins | succeeded | success rate | p50 | p99 | abusers: 200 / 429 / 503 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, addr, abused) in phases {
        eprintln!("fairness: {name}...");
        let window = Window::after(secs(2.0), secs(options.fair_secs));
        let flood = abused.then(|| {
            let users = abusers.to_vec();
            tokio::spawn(
                async move { client::login_flood(addr, &users, distinct, window, true).await },
            )
        });
        let mut seen = client::victim(addr, victim_source, victim.clone(), window).await?;
        let flood = match flood {
            Some(task) => Some(task.await??),
            None => None,
        };
        seen.latencies.sort_unstable();
        let rate = seen.ok as f64 / seen.attempts.max(1) as f64;
        let abuse = flood.map_or_else(
            || "-".to_owned(),
            |f| format!("{} / {} / {}", f.ok, f.limited, f.unavailable),
        );
        println!(
            "| {name} | {} | {} | {:.0}% | {} | {} | {abuse} |",
            seen.attempts,
            seen.ok,
            rate * 100.0,
            fmt_latency(percentile(&seen.latencies, 0.50)),
            fmt_latency(percentile(&seen.latencies, 0.99)),
        );
        if !seen.refused.is_empty() {
            eprintln!("fairness: {name}: the user was refused {:?}", seen.refused);
        }
    }
    Ok(())
}

fn print_header(options: &Options, ready: &Ready) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("## tower-jwt-auth load test\n");
    println!(
        "- machine: {} cores (`available_parallelism`), load average at start {}; {} {}",
        cores(),
        if load.is_empty() {
            "unknown".to_owned()
        } else {
            load.join(" ")
        },
        std::env::consts::OS,
        std::env::consts::ARCH,
    );
    println!(
        "- server: `loadgen serve`, a separate process: axum 0.8 on tokio, {} workers; {} distinct tokens per pool",
        ready.workers, options.tokens
    );
    if options
        .scenarios
        .iter()
        .any(|s| ('a'..='d').contains(s) || *s == 'f')
    {
        println!(
            "- client: this process, hyper 1 HTTP/1.1 keep-alive connections on tokio, {} workers; \
             {} connections, closed loop; {} rounds of {:.1} s per scenario, rotating order, \
             each after {:.1} s uncounted warm-up",
            options.client_threads,
            options.connections,
            options.rounds,
            options.duration / options.rounds as f64,
            options.warmup,
        );
    }
    println!(
        "- build: {}",
        if cfg!(debug_assertions) {
            "debug (use --release for figures)"
        } else {
            "release"
        }
    );
    println!();
}

// ---------------------------------------------------------------------------------------------
// (a) to (d): closed loops
// ---------------------------------------------------------------------------------------------

struct Scenario {
    letter: char,
    name: &'static str,
    tokens: Option<Arc<Vec<HeaderValue>>>,
    /// Least throughput as a ratio to (a).
    target: Option<f64>,
    rounds: Vec<Round>,
}

impl Scenario {
    fn new(
        letter: char,
        name: &'static str,
        tokens: Option<&Vec<String>>,
        target: Option<f64>,
    ) -> Self {
        Self {
            letter,
            name,
            // Built here, not per request: a malformed token would be a harness bug.
            tokens: tokens.map(|t| client::bearer_values(t).unwrap_or_default()),
            target,
            rounds: Vec::new(),
        }
    }

    fn ok(&self) -> u64 {
        self.rounds.iter().map(|r| r.load.ok).sum()
    }

    fn rate(&self, window: Duration) -> f64 {
        self.ok() as f64 / (window.as_secs_f64() * self.rounds.len() as f64)
    }

    /// This scenario's requests over `other`'s, round by round ("0.81 0.77 0.90"): rounds run
    /// side by side, so their ratios show how much the machine's noise moves the total.
    fn per_round_over(&self, other: &Scenario) -> String {
        let rounds: Vec<String> = self
            .rounds
            .iter()
            .zip(&other.rounds)
            .map(|(mine, theirs)| format!("{:.2}", mine.load.ok as f64 / theirs.load.ok as f64))
            .collect();
        rounds.join(" ")
    }
}

struct Round {
    load: client::Load,
    cpu: Option<Cpu>,
}

async fn closed_loops(
    options: &Options,
    ready: &Ready,
    server_pid: u32,
    mut scenarios: Vec<Scenario>,
) -> Result<(), BoxError> {
    let window = secs(options.duration / options.rounds as f64);
    for round in 0..options.rounds {
        let count = scenarios.len();
        for i in 0..count {
            let scenario = &mut scenarios[(i + round) % count];
            eprintln!(
                "round {}/{}: ({}) {}",
                round + 1,
                options.rounds,
                scenario.letter,
                scenario.name
            );
            // (n) is (a)'s app; (j) a process of its own.
            let (addr, pid) = match (scenario.letter, options.peer) {
                ('j', Some(peer)) => (peer, options.peer_pid),
                ('n', _) => (port(ready, 'a')?, Some(server_pid)),
                (letter, _) => (port(ready, letter)?, Some(server_pid)),
            };
            let measured = Window::after(secs(options.warmup), window);
            let cpu = tokio::spawn(async move {
                match pid {
                    Some(pid) => cpu_during(pid, measured).await,
                    None => None,
                }
            });
            let load =
                client::closed_loop(addr, scenario.tokens.clone(), options.connections, measured)
                    .await?;
            scenario.rounds.push(Round {
                load,
                cpu: cpu.await?,
            });
        }
    }

    let base = scenarios.iter().find(|s| s.letter == 'a');
    let base_rate = base.map(|s| s.rate(window));
    println!(
        "### Throughput and latency ({} connections)\n",
        options.connections
    );
    println!(
        "| scenario | req/s | p50 | p99 | **ratio to (a)** | per round | server CPU/req | client CPU/req | CPU ratio | other load | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for scenario in &scenarios {
        let mut latencies: Vec<u64> = scenario
            .rounds
            .iter()
            .flat_map(|r| r.load.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        let rate = scenario.rate(window);
        let (ratio, per_round) = match base {
            Some(base) if base.letter != scenario.letter => {
                let ratio = rate / base_rate.unwrap_or(f64::NAN);
                (format!("**{ratio:.2}x**"), scenario.per_round_over(base))
            }
            Some(_) => ("1.00x".to_owned(), String::new()),
            None => ("-".to_owned(), String::new()),
        };
        let cpu = Cpu::sum(scenario.rounds.iter().filter_map(|r| r.cpu));
        let ok = scenario.ok().max(1) as f64;
        let (server_cpu, client_cpu, other) = match cpu {
            Some(cpu) => (
                format!("{:.1} µs", cpu.server_secs * 1e6 / ok),
                format!("{:.1} µs", cpu.client_secs * 1e6 / ok),
                format!("{:.0}% of a core", cpu.other_cores() * 100.0),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        // What the ratio would be on a machine doing nothing else: there, throughput is the
        // cores over the CPU one request costs the server and the client together.
        let per_request = |s: &Scenario| {
            Cpu::sum(s.rounds.iter().filter_map(|r| r.cpu))
                .map(|c| (c.server_secs + c.client_secs) / s.ok().max(1) as f64)
        };
        let cpu_ratio = match (base.and_then(per_request), per_request(scenario)) {
            (Some(base), Some(this)) if this > 0.0 => format!("{:.2}x", base / this),
            _ => "-".to_owned(),
        };
        let target = match (scenario.target, base_rate) {
            (Some(target), Some(base_rate)) => {
                let verdict = if rate / base_rate >= target {
                    "PASS"
                } else {
                    "MISS"
                };
                format!(">= {target:.2}x {verdict}")
            }
            (Some(target), None) => format!(">= {target:.2}x (needs (a))"),
            (None, _) if scenario.letter == 'a' => "baseline".to_owned(),
            (None, _) => "reported".to_owned(),
        };
        println!(
            "| ({}) {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            scenario.letter,
            scenario.name,
            rate,
            fmt_latency(percentile(&latencies, 0.50)),
            fmt_latency(percentile(&latencies, 0.99)),
            ratio,
            per_round,
            server_cpu,
            client_cpu,
            cpu_ratio,
            other,
            target,
        );
    }
    let errors: u64 = scenarios
        .iter()
        .flat_map(|s| &s.rounds)
        .map(|r| r.load.errors)
        .sum();
    println!();
    if errors > 0 {
        println!(
            "**{errors} requests failed or answered other than 200: the run is not valid.**\n"
        );
    }
    println!(
        "req/s counts 200 answers completed inside the measured windows; p50/p99 are over every such \
         request; CPU per request is the server process's and this process's user+system time over \
         the windows (`/proc`, 10 ms ticks); \"CPU ratio\" is (a)'s server+client CPU per request over \
         this scenario's, the throughput ratio a machine doing nothing else would show; \"other \
         load\" is the rest of the machine's busy time (builds, fuzzing).\n"
    );
    let by_letter = |letter| scenarios.iter().find(|s| s.letter == letter);
    if let (Some(b), Some(p)) = (by_letter('b'), by_letter('p')) {
        let ratio = b.rate(window) / p.rate(window);
        let verdict = if ratio >= 1.3 { "PASS" } else { "MISS" };
        println!(
            "(b) over (p), `BearerAuth` over the hand-written middleware on the same tokens: \
             **{ratio:.2}x** (per round {}; target >= 1.30x {verdict}).\n",
            b.per_round_over(p)
        );
    }
    for (letter, what) in [
        ('n', "the app without authentication sent the same bytes"),
        ('j', "jwt-authorizer"),
    ] {
        if let (Some(b), Some(other)) = (by_letter('b'), by_letter(letter)) {
            println!(
                "(b) over ({letter}), `BearerAuth` over {what}: **{:.2}x**.\n",
                b.rate(window) / other.rate(window)
            );
        }
    }
    if scenarios.iter().any(|s| s.letter == 'd') {
        let stats = client::get_json(port(ready, 'd')?, "/stats").await?;
        let (hits, misses) = (
            stats["hits"].as_u64().unwrap_or(0),
            stats["misses"].as_u64().unwrap_or(0),
        );
        println!(
            "(d)'s cache, warm-ups included: {hits} hits, {misses} misses ({:.2}% hits), {} tokens held.\n",
            100.0 * hits as f64 / (hits + misses).max(1) as f64,
            stats["entries"],
        );
    }
    Ok(())
}

/// CPU seconds spent during a window.
#[derive(Clone, Copy, Debug)]
struct Cpu {
    server_secs: f64,
    client_secs: f64,
    /// All processes', from `/proc/stat`.
    machine_secs: f64,
    wall_secs: f64,
}

impl Cpu {
    fn sum(cpus: impl Iterator<Item = Cpu>) -> Option<Cpu> {
        cpus.reduce(|a, b| Cpu {
            server_secs: a.server_secs + b.server_secs,
            client_secs: a.client_secs + b.client_secs,
            machine_secs: a.machine_secs + b.machine_secs,
            wall_secs: a.wall_secs + b.wall_secs,
        })
    }

    /// Cores' worth of busy time that was neither the server nor the client.
    fn other_cores(&self) -> f64 {
        ((self.machine_secs - self.server_secs - self.client_secs) / self.wall_secs).max(0.0)
    }
}

/// `/proc` clock ticks are USER_HZ, 100 per second on every Linux architecture.
const TICK_SECS: f64 = 0.01;

/// utime + stime of a process, in seconds.
fn process_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces; utime and
    // stime are fields 14 and 15 of the whole line, 12 and 13 counted from the state (field 3).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * TICK_SECS)
}

/// Busy seconds of the whole machine (every core): all but idle and iowait.
fn machine_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy * TICK_SECS)
}

fn cpu_now(server_pid: &str) -> Option<(f64, f64, f64, Instant)> {
    Some((
        process_cpu(server_pid)?,
        process_cpu("self")?,
        machine_cpu()?,
        Instant::now(),
    ))
}

/// The CPU the server, this process and the machine used during `window`.
async fn cpu_during(server_pid: u32, window: Window) -> Option<Cpu> {
    let pid = server_pid.to_string();
    tokio::time::sleep_until(window.start.into()).await;
    let (s0, c0, m0, t0) = cpu_now(&pid)?;
    tokio::time::sleep_until(window.end.into()).await;
    let (s1, c1, m1, t1) = cpu_now(&pid)?;
    Some(Cpu {
        server_secs: s1 - s0,
        client_secs: c1 - c0,
        machine_secs: m1 - m0,
        wall_secs: (t1 - t0).as_secs_f64(),
    })
}

// ---------------------------------------------------------------------------------------------
// (e): login under load
// ---------------------------------------------------------------------------------------------

/// Under this multiple of its idle p99, a probe's p99 during the flood passes.
const FLOOD_P99_TARGET: f64 = 5.0;

async fn login_under_load(
    options: &Options,
    ready: &Ready,
    server_pid: u32,
) -> Result<(), BoxError> {
    let addr = port(ready, 'e')?;
    let distinct = client::distinct_sources_work(addr).await;
    let token = client::login_once(addr, &ready.login_users[0]).await?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))?;
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.probe_rate));
    let probes = |window: Window| {
        let health = tokio::spawn(client::probe(addr, "/health", None, interval, window));
        let hello = tokio::spawn(client::probe(
            addr,
            "/hello",
            Some(bearer.clone()),
            interval,
            window,
        ));
        async move { Ok::<_, BoxError>((health.await??, hello.await??)) }
    };

    // Idle and flood alternate, so a change in the machine's other load lands on both.
    let rounds = options.login_rounds;
    let mut idle = (client::Probe::default(), client::Probe::default());
    let mut during = (client::Probe::default(), client::Probe::default());
    let mut flood = client::Flood::default();
    let (mut idle_cpu, mut flood_cpu) = (Vec::new(), Vec::new());
    let before = client::get_json(addr, "/stats").await?;
    for round in 1..=rounds {
        eprintln!("login test, round {round}/{rounds}: idle");
        let window = Window::after(secs(0.5), secs(options.idle / rounds as f64));
        let cpu = tokio::spawn(cpu_during(server_pid, window));
        let (health, hello) = probes(window).await?;
        idle.0.merge(health);
        idle.1.merge(hello);
        idle_cpu.extend(cpu.await?);

        eprintln!(
            "login test, round {round}/{rounds}: {} clients logging in",
            options.flood_clients
        );
        // The clients connect and fill the hasher's queue during the first 2 s, not counted.
        let window = Window::after(secs(2.0), secs(options.flood / rounds as f64));
        let cpu = tokio::spawn(cpu_during(server_pid, window));
        let logins = tokio::spawn({
            let users = ready.login_users.clone();
            let ignore = options.ignore_retry_after;
            async move { client::login_flood(addr, &users, distinct, window, ignore).await }
        });
        let (health, hello) = probes(window).await?;
        during.0.merge(health);
        during.1.merge(hello);
        flood.merge(logins.await??);
        flood_cpu.extend(cpu.await?);
    }
    let after = client::get_json(addr, "/stats").await?;
    let other_load = |cpu: Vec<Cpu>| {
        Cpu::sum(cpu.into_iter()).map_or("-".to_owned(), |c| {
            format!("{:.0}%", c.other_cores() * 100.0)
        })
    };
    let (idle_other, flood_other) = (other_load(idle_cpu), other_load(flood_cpu));

    println!("### Login under load\n");
    println!(
        "Hasher: {}. {} clients, each its own user{}, log in in a loop for {:.0} s in all (in \
         {} rounds alternating with the idle phase, each after 2 s uncounted), {} after 503/429; \
         `/health` and `GET /hello` (behind `auth.bearer_layer()`, EdDSA) are probed on their \
         own connections, {} requests/s each, latency from when a request was due if the previous \
         answer made it late.\n",
        ready.hasher,
        options.flood_clients,
        if distinct {
            " and its own 127.0.0.x address"
        } else {
            " (all from 127.0.0.1: this machine refused other loopback sources)"
        },
        options.flood,
        rounds,
        if options.ignore_retry_after {
            "retrying at once"
        } else {
            "waiting `Retry-After`"
        },
        options.probe_rate,
    );
    println!("| probe | phase | answers | p50 | p99 | max | not 200 | sent late | other load |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut verdicts = Vec::new();
    for (route, idle, during) in [
        ("`GET /health`", &idle.0, &during.0),
        ("`GET /hello` (BearerAuth)", &idle.1, &during.1),
    ] {
        let mut p99s = [0u64; 2];
        let phases = [("idle", idle, &idle_other), ("flood", during, &flood_other)];
        for (i, (phase, probe, other)) in phases.into_iter().enumerate() {
            let mut latencies = probe.latencies.clone();
            latencies.sort_unstable();
            p99s[i] = percentile(&latencies, 0.99);
            println!(
                "| {route} | {phase} | {} | {} | {} | {} | {} | {} | {other} of a core |",
                latencies.len(),
                fmt_latency(percentile(&latencies, 0.50)),
                fmt_latency(p99s[i]),
                fmt_latency(latencies.last().copied().unwrap_or(0)),
                probe.failures,
                probe.behind,
            );
        }
        let ratio = p99s[1] as f64 / p99s[0].max(1) as f64;
        let verdict = if ratio < FLOOD_P99_TARGET {
            "PASS"
        } else {
            "MISS"
        };
        verdicts.push(format!(
            "- {route}: p99 during the flood / idle p99 = **{ratio:.1}x** (target < {FLOOD_P99_TARGET:.0}x): **{verdict}**"
        ));
    }
    println!();
    flood.ok_latencies.sort_unstable();
    let stat = |name: &str| {
        after[name]
            .as_u64()
            .unwrap_or(0)
            .saturating_sub(before[name].as_u64().unwrap_or(0))
    };
    let other = if flood.other.is_empty() {
        "none".to_owned()
    } else {
        flood
            .other
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("| flood | |");
    println!("|---|---|");
    println!(
        "| logins/s (200) | **{:.1}** ({} in {:.0} s) |",
        flood.ok as f64 / options.flood,
        flood.ok,
        options.flood
    );
    println!(
        "| login latency p50 / p99 / max | {} / {} / {} |",
        fmt_latency(percentile(&flood.ok_latencies, 0.50)),
        fmt_latency(percentile(&flood.ok_latencies, 0.99)),
        fmt_latency(flood.ok_latencies.last().copied().unwrap_or(0)),
    );
    println!(
        "| 503 | {} ({}) |",
        flood.unavailable,
        if flood.unavailable_without_retry_after == 0 {
            "every one with `Retry-After`".to_owned()
        } else {
            format!(
                "**{} without `Retry-After`**",
                flood.unavailable_without_retry_after
            )
        }
    );
    println!("| 429 | {} |", flood.limited);
    println!("| other statuses | {other} |");
    println!("| failed exchanges | {} |", flood.errors);
    println!(
        "| server's hasher during the flood, warm-up included | {} verifications, {} refused as overloaded |",
        stat("verifications"),
        stat("overloaded"),
    );
    println!();
    for verdict in verdicts {
        println!("{verdict}");
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt_latency(nanos: u64) -> String {
    let micros = nanos as f64 / 1000.0;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{:.2} ms", micros / 1000.0)
    }
}
