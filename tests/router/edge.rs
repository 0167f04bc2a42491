//! The example server's edge over loopback: connection timeouts (header read, idle, request),
//! the connection caps (per client and in total) and the headers every answer carries. Slow and
//! idle clients are raw `TcpStream`s; answers that need parsing come from hyper's clients.
//!
//! Every timeout under test is configured to 1 s (the others to 30 s, out of the way), every
//! wait is bounded by [`LIMIT`], and no test asserts a lower bound tighter than half the
//! configured timeout, so a loaded machine slows the tests down without failing them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::common::answer::{Answer, answer};
use crate::example::{self, Config};
use crate::server::vars;

/// The longest any test waits for something the server should do within about a second.
const LIMIT: Duration = Duration::from_secs(15);
const SECOND: Duration = Duration::from_secs(1);
const ADMIN: &str = "admin:change-me-please";
const FORM: &str = "application/x-www-form-urlencoded";
const OTHER_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The example's app served with the configured connection limits on a loopback port.
struct Edge {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(pairs: &[(&str, &str)]) -> Edge {
    let config = Config::from_vars(&vars(pairs)).unwrap();
    let limits = config.connection_limits().unwrap();
    let (router, _auth) = example::app(&config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(example::edge::serve_with(listener, router, limits, async {
        let _ = stopped.await;
    }));
    Edge {
        addr,
        stop: Some(stop),
        task,
    }
}

impl Edge {
    /// A raw connection from `local` (any address of `127.0.0.0/8`).
    async fn connect_from(&self, local: Ipv4Addr) -> TcpStream {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((local, 0).into()).unwrap();
        socket.connect(self.addr).await.unwrap()
    }

    async fn connect(&self) -> TcpStream {
        self.connect_from(Ipv4Addr::LOCALHOST).await
    }

    async fn shut_down(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("serve did not finish after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

fn health_request() -> &'static [u8] {
    b"GET /health HTTP/1.1\r\nhost: edge.test\r\n\r\n"
}

/// Reads one HTTP/1.1 answer (head and `content-length` body) from `stream`; `None` when the
/// server closed (or reset) the connection before a whole head arrived.
async fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        match tokio::time::timeout(LIMIT, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return None,
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer within {LIMIT:?}"),
        }
    };
    let head = std::str::from_utf8(&received[..head_end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let length: usize = headers
        .get("content-length")
        .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    let mut body = received[head_end..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(LIMIT, stream.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed in the middle of a body");
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Answer {
        status: StatusCode::from_u16(status.parse().unwrap()).unwrap(),
        headers,
        error: None,
        body: Bytes::from(body),
    })
}

/// `GET /health` on `stream`, expecting `200 ok` and a connection kept open.
async fn health(stream: &mut TcpStream) {
    stream.write_all(health_request()).await.unwrap();
    let reply = read_answer(stream)
        .await
        .expect("closed instead of answering");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "ok");
}

/// Waits until the server closes `stream` (end of file or a reset), at most [`LIMIT`]: how long
/// that took, from `since`. Bytes the server sends first fail the test.
async fn closed(stream: &mut TcpStream, since: Instant) -> Duration {
    let mut chunk = [0u8; 1024];
    match tokio::time::timeout_at(since + LIMIT, stream.read(&mut chunk)).await {
        Err(_) => panic!("still open after {LIMIT:?}"),
        Ok(Ok(0) | Err(_)) => since.elapsed(),
        Ok(Ok(n)) => panic!(
            "the server sent {:?} instead of closing",
            String::from_utf8_lossy(&chunk[..n])
        ),
    }
}

/// A connection past a cap: closed at once, without an answer.
async fn refused(mut stream: TcpStream) {
    let since = Instant::now();
    // The server may have closed it already: the write may fail.
    let _ = stream.write_all(health_request()).await;
    let took = closed(&mut stream, since).await;
    // An admitted connection would have answered; one closed by a timeout would have taken the
    // header-read timeout at least.
    assert!(
        took < example::edge::DEFAULT_HEADER_READ_TIMEOUT,
        "refused only after {took:?}"
    );
}

/// Tries a new connection from `local` until one is served (the server frees a slot only
/// when it has seen the old connection close), at most [`LIMIT`].
async fn eventually_served(edge: &Edge, local: Ipv4Addr) -> TcpStream {
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut stream = edge.connect_from(local).await;
        if stream.write_all(health_request()).await.is_ok()
            && let Some(reply) = read_answer(&mut stream).await
        {
            assert_eq!(reply.status, StatusCode::OK);
            return stream;
        }
        assert!(Instant::now() < deadline, "no connection served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

/// `HTTP_HEADER_READ_TIMEOUT=1`: a connection that sends nothing, one that sends half of its
/// first head, and one that sends half of its second head are all closed after about a second
/// (the idle timeout, 30 s, is out of the way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_heads_are_closed_after_the_header_read_timeout() {
    let edge = start(&[
        ("HTTP_HEADER_READ_TIMEOUT", "1"),
        ("HTTP_IDLE_TIMEOUT", "30"),
    ])
    .await;
    let silent = async {
        let mut stream = edge.connect().await;
        closed(&mut stream, Instant::now()).await
    };
    let half_first = async {
        let mut stream = edge.connect().await;
        let since = Instant::now();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: ")
            .await
            .unwrap();
        closed(&mut stream, since).await
    };
    let half_second = async {
        let mut stream = edge.connect().await;
        health(&mut stream).await;
        let since = Instant::now();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: ")
            .await
            .unwrap();
        closed(&mut stream, since).await
    };
    let (silent, half_first, half_second) = tokio::join!(silent, half_first, half_second);
    for (what, took) in [
        ("nothing sent", silent),
        ("half the first head", half_first),
        ("half the second head", half_second),
    ] {
        assert!(took >= SECOND / 2, "{what}: closed after {took:?}");
    }
    // A prompt client is still served.
    health(&mut edge.connect().await).await;
    edge.shut_down().await;
}

/// `HTTP_IDLE_TIMEOUT=1`: an HTTP/1.1 keep-alive connection and an HTTP/2 connection are
/// closed about a second after their last answer (the header-read timeout, 30 s, is out of the
/// way); a request in flight for longer than that is not cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout_busy_ones_are_not() {
    let edge = start(&[
        ("HTTP_HEADER_READ_TIMEOUT", "30"),
        ("HTTP_IDLE_TIMEOUT", "1"),
        ("AUTH_BOOTSTRAP_ADMIN", ADMIN),
    ])
    .await;
    let http1 = async {
        let mut stream = edge.connect().await;
        health(&mut stream).await;
        closed(&mut stream, Instant::now()).await
    };
    let http2 = async {
        let io = TokioIo::new(edge.connect().await);
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        let connection = tokio::spawn(connection);
        let request = Request::get(format!("http://{}/health", edge.addr))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.unwrap();
        let since = Instant::now();
        tokio::time::timeout(LIMIT, connection)
            .await
            .expect("the HTTP/2 connection is still open")
            .unwrap()
            .ok();
        // The sender is kept until here: the client does not close the connection itself.
        drop(sender);
        since.elapsed()
    };
    // A login whose body takes 2.5 s to arrive, in 5 parts: busy all along, so not idle.
    let busy = async {
        let body = b"grant_type=password&username=admin&password=not-the-password";
        let mut stream = edge.connect().await;
        let head = format!(
            "POST /auth/token HTTP/1.1\r\nhost: edge.test\r\ncontent-type: {FORM}\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        for part in body.chunks(body.len().div_ceil(5)) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stream.write_all(part).await.unwrap();
        }
        read_answer(&mut stream)
            .await
            .expect("the idle timeout cut a request in flight")
            .status
    };
    let (http1, http2, busy) = tokio::join!(http1, http2, busy);
    assert!(http1 >= SECOND / 2, "HTTP/1.1 closed after {http1:?}");
    assert!(http2 >= SECOND / 2, "HTTP/2 closed after {http2:?}");
    assert_eq!(busy, StatusCode::BAD_REQUEST, "a failed login answers 400");
    edge.shut_down().await;
}

/// `HTTP_REQUEST_TIMEOUT=1`: a login whose body never finishes is answered 408 after about a
/// second, with the edge's headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_slower_than_the_request_timeout_is_answered_408() {
    let edge = start(&[
        ("HTTP_REQUEST_TIMEOUT", "1"),
        ("HTTP_HEADER_READ_TIMEOUT", "30"),
        ("HTTP_IDLE_TIMEOUT", "30"),
    ])
    .await;
    let mut stream = edge.connect().await;
    let since = Instant::now();
    stream
        .write_all(
            format!(
                "POST /auth/token HTTP/1.1\r\nhost: edge.test\r\ncontent-type: {FORM}\r\n\
                 content-length: 100\r\n\r\ngrant_type"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let reply = read_answer(&mut stream).await.expect("closed without 408");
    let took = since.elapsed();
    assert_eq!(reply.status, StatusCode::REQUEST_TIMEOUT);
    assert!(took >= SECOND / 2, "answered after {took:?}");
    assert_edge_headers("408", &reply, "no-store");
    edge.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Connection caps.

/// `HTTP_MAX_CONNECTIONS_PER_IP=3`: 127.0.0.1 holds three idle connections; its fourth is
/// closed at once while another client (127.0.0.2) is served, and once 127.0.0.1 closes one,
/// it is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_take_every_connection() {
    let edge = start(&[("HTTP_MAX_CONNECTIONS_PER_IP", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = edge.connect().await;
        health(&mut stream).await;
        held.push(stream);
    }
    refused(edge.connect().await).await;
    let mut other = edge.connect_from(OTHER_CLIENT).await;
    health(&mut other).await;
    // The held connections are still served.
    for stream in &mut held {
        health(stream).await;
    }

    drop(held.pop());
    eventually_served(&edge, Ipv4Addr::LOCALHOST).await;
    edge.shut_down().await;
}

/// A reverse proxy carries many clients on its connections: peers in `AUTH_TRUSTED_PROXIES`
/// count only towards the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_are_not_held_to_the_per_client_cap() {
    let edge = start(&[
        ("HTTP_MAX_CONNECTIONS_PER_IP", "3"),
        ("AUTH_TRUSTED_PROXIES", "127.0.0.1/32"),
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = edge.connect().await;
        health(&mut stream).await;
        held.push(stream);
    }
    // 127.0.0.2 is no proxy: capped.
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut stream = edge.connect_from(OTHER_CLIENT).await;
        health(&mut stream).await;
        others.push(stream);
    }
    refused(edge.connect_from(OTHER_CLIENT).await).await;
    edge.shut_down().await;
}

/// `HTTP_MAX_CONNECTIONS=3`: with three connections open, a fourth (from any client) is
/// closed at once, the open ones keep being served, and once they close a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_are_closed_until_one_frees() {
    let edge = start(&[("HTTP_MAX_CONNECTIONS", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = edge.connect().await;
        health(&mut stream).await;
        held.push(stream);
    }
    refused(edge.connect().await).await;
    refused(edge.connect_from(OTHER_CLIENT).await).await;
    for stream in &mut held {
        health(stream).await;
    }
    drop(held);
    eventually_served(&edge, OTHER_CLIENT).await;
    edge.shut_down().await;
}

/// With the idle timeout short, idle connections that fill the cap free it by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_at_the_cap_make_room_when_they_time_out() {
    let edge = start(&[("HTTP_MAX_CONNECTIONS", "2"), ("HTTP_IDLE_TIMEOUT", "1")]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = edge.connect().await;
        health(&mut stream).await;
        held.push(stream);
    }
    for stream in &mut held {
        closed(stream, Instant::now()).await;
    }
    eventually_served(&edge, OTHER_CLIENT).await;
    edge.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Headers.

/// The headers of every answer, and its `Cache-Control`.
#[track_caller]
fn assert_edge_headers(what: &str, reply: &Answer, cache_control: &str) {
    let expected = [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", cache_control),
    ];
    for (name, value) in expected {
        assert_eq!(
            reply.header(name),
            Some(value),
            "{what}: {name} in {:?}",
            reply.headers
        );
    }
    let policy = reply.header("content-security-policy").unwrap_or("");
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'none'"),
        "{what}: content-security-policy {policy:?}"
    );
}

struct Api {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    async fn send(&self, method: Method, path: &str, bearer: Option<&str>, form: &str) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if !form.is_empty() {
            request = request.header("content-type", FORM);
        }
        let request = request
            .body(Full::new(Bytes::from(form.to_owned())))
            .unwrap();
        answer(self.client.request(request).await.unwrap()).await
    }
}

/// Every answer carries the security headers, whoever wrote it (a handler, the login router,
/// `BearerAuth`, the login limiter, the router's 404 and 405, the body cap); answers with
/// tokens or personal data are `no-store`, and so is everything else but the public JWKS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let edge = start(&[("AUTH_BOOTSTRAP_ADMIN", ADMIN)]).await;
    let client = Api {
        addr: edge.addr,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let login = "grant_type=password&username=admin&password=change-me-please";
    let tokens = client.send(Method::POST, "/auth/token", None, login).await;
    assert_eq!(tokens.status, StatusCode::OK);
    assert_edge_headers("token", &tokens, "no-store");
    let token = tokens.json()["access_token"].as_str().unwrap().to_owned();
    let bearer = Some(token.as_str());

    let checks = [
        (
            "health",
            Method::GET,
            "/health",
            None,
            StatusCode::OK,
            "no-store",
        ),
        (
            "me",
            Method::GET,
            "/users/me",
            bearer,
            StatusCode::OK,
            "no-store",
        ),
        (
            "users",
            Method::GET,
            "/admin/users",
            bearer,
            StatusCode::OK,
            "no-store",
        ),
        (
            "items",
            Method::GET,
            "/items",
            bearer,
            StatusCode::OK,
            "no-store",
        ),
        (
            "jwks",
            Method::GET,
            "/auth/jwks.json",
            None,
            StatusCode::OK,
            "public, max-age=300",
        ),
        (
            "anonymous",
            Method::GET,
            "/users/me",
            None,
            StatusCode::UNAUTHORIZED,
            "no-store",
        ),
        (
            "not found",
            Method::GET,
            "/nowhere",
            None,
            StatusCode::NOT_FOUND,
            "no-store",
        ),
        (
            "not found under /auth",
            Method::GET,
            "/auth/nowhere",
            None,
            StatusCode::NOT_FOUND,
            "no-store",
        ),
        (
            "wrong method",
            Method::GET,
            "/auth/token",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "no-store",
        ),
        (
            "logout",
            Method::POST,
            "/auth/logout",
            bearer,
            StatusCode::NO_CONTENT,
            "no-store",
        ),
    ];
    for (what, method, path, bearer, status, cache_control) in checks {
        let reply = client.send(method, path, bearer, "").await;
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert_edge_headers(what, &reply, cache_control);
    }

    // The login limiter's 400s, then its 429.
    let guess = "grant_type=password&username=nobody&password=wrong-guess";
    let mut last = None;
    for _ in 0..7 {
        last = Some(client.send(Method::POST, "/auth/token", None, guess).await);
        let reply = last.as_ref().unwrap();
        assert_edge_headers("failed login", reply, "no-store");
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    }
    assert_eq!(last.unwrap().status, StatusCode::TOO_MANY_REQUESTS);

    // A body over the edge's cap, on a route that would not read it: 413 before routing.
    let mut stream = edge.connect().await;
    stream
        .write_all(b"POST /health HTTP/1.1\r\nhost: edge.test\r\ncontent-length: 1048576\r\n\r\n")
        .await
        .unwrap();
    let reply = read_answer(&mut stream).await.expect("closed without 413");
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_edge_headers("413", &reply, "no-store");
    edge.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// Configuration.

#[test]
fn connection_settings_have_defaults_and_refuse_bad_values() {
    let config = Config::from_vars(&HashMap::new()).unwrap();
    assert_eq!(config.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.idle_timeout, Duration::from_secs(30));
    assert_eq!(config.request_timeout, Duration::from_secs(30));
    assert_eq!(config.max_connections, None);
    assert_eq!(config.max_connections_per_ip, 64);
    // The default cap stays below the open-file limit, raised to the hard limit at start.
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    let max = config.connection_limits().unwrap().max();
    assert!((1..=10_000).contains(&max), "{max}");
    assert!((max as u64) < files, "{max} of {files}");

    let config = Config::from_vars(&vars(&[
        ("HTTP_HEADER_READ_TIMEOUT", "5"),
        ("HTTP_IDLE_TIMEOUT", "3600"),
        ("HTTP_REQUEST_TIMEOUT", "1"),
        ("HTTP_MAX_CONNECTIONS", "100"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "1"),
    ]))
    .unwrap();
    assert_eq!(config.header_read_timeout, Duration::from_secs(5));
    assert_eq!(config.idle_timeout, Duration::from_secs(3600));
    assert_eq!(config.request_timeout, Duration::from_secs(1));
    assert_eq!(config.max_connections, Some(100));
    assert_eq!(config.max_connections_per_ip, 1);
    assert_eq!(config.connection_limits().unwrap().max(), 100);

    for (name, value) in [
        ("HTTP_HEADER_READ_TIMEOUT", "0"),
        ("HTTP_HEADER_READ_TIMEOUT", "3601"),
        ("HTTP_IDLE_TIMEOUT", "ten"),
        ("HTTP_REQUEST_TIMEOUT", "1.5"),
        ("HTTP_REQUEST_TIMEOUT", "-1"),
        ("HTTP_MAX_CONNECTIONS", "0"),
        ("HTTP_MAX_CONNECTIONS", "1000001"),
        ("HTTP_MAX_CONNECTIONS_PER_IP", "lots"),
    ] {
        let error = Config::from_vars(&vars(&[(name, value)])).unwrap_err();
        assert!(error.to_string().contains(name), "{name}={value}: {error}");
    }

    // More connections than open files: refused at start, not at the first failed accept.
    let too_many = files.saturating_sub(example::edge::RESERVED_FILES) + 1;
    if let Some(too_many) = usize::try_from(too_many).ok().filter(|&n| n <= 1_000_000) {
        let value = too_many.to_string();
        let config = Config::from_vars(&vars(&[("HTTP_MAX_CONNECTIONS", &value)])).unwrap();
        let error = config.connection_limits().unwrap_err().to_string();
        assert!(error.contains("HTTP_MAX_CONNECTIONS"), "{error}");
        assert!(error.contains("open files"), "{error}");
    }

    let config = Config::from_vars(&vars(&[
        ("AUTH_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("AUTH_RATE_LIMIT", "off"),
    ]))
    .unwrap();
    let error = config.connection_limits().unwrap_err().to_string();
    assert!(error.contains("AUTH_TRUSTED_PROXIES"), "{error}");
}
