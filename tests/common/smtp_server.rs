//! A real SMTP server of the caller's own for the mail tests: Debian's `aiosmtpd` (package
//! `python3-aiosmtpd`), started from `PATH` on a free loopback port with its `Mailbox` handler,
//! which writes each message it accepts into a Maildir; killed on drop.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One message as the server stored it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The raw message (headers and body).
    pub raw: String,
}

impl Received {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next().unwrap_or("");
        let head = head.replace("\r\n ", " ").replace("\n ", " ");
        head.lines().find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    }

    /// The body with quoted-printable soft breaks and escapes undone (what lettre writes).
    pub fn body(&self) -> String {
        let body = self
            .raw
            .split_once("\r\n\r\n")
            .or_else(|| self.raw.split_once("\n\n"))
            .map_or("", |(_, body)| body);
        if self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"))
        {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        }
    }

    /// The value of the `token` query parameter of the first link starting with `prefix`.
    pub fn token_after(&self, prefix: &str) -> Option<String> {
        let body = self.body();
        let start = body.find(prefix)? + prefix.len();
        let rest = &body[start..];
        let rest = rest.strip_prefix("?token=")?;
        Some(
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An `aiosmtpd` child process on a loopback port, killed on drop.
pub struct SmtpServer {
    port: u16,
    child: Child,
    /// The Maildir, removed on drop.
    dir: PathBuf,
}

fn aiosmtpd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("aiosmtpd"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a server encrypts, with the test certificate for `localhost` and `127.0.0.1`
/// (`tests/data/tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    /// Plain SMTP.
    None,
    /// STARTTLS, required before any mail.
    StartTls,
    /// Implicit TLS (SMTPS).
    Implicit,
}

fn tls_file(name: &str) -> String {
    format!("{}/tests/data/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl SmtpServer {
    /// A running plain server, or `None` (after saying so) when `aiosmtpd` is not on `PATH`.
    pub fn start(what: &str) -> Option<Self> {
        Self::start_with(what, Encryption::None)
    }

    /// A running server encrypting as `encryption`, or `None` (after saying so).
    pub fn start_with(what: &str, encryption: Encryption) -> Option<Self> {
        let Some(binary) = aiosmtpd_binary() else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: aiosmtpd not found on PATH; `{what}` did not run \
                 (install it, e.g. `apt-get install python3-aiosmtpd`)"
            );
            return None;
        };
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-smtp-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        for _ in 0..5 {
            let _ = std::fs::remove_dir_all(&dir);
            let port = free_port();
            let mut command = Command::new(&binary);
            match encryption {
                Encryption::None => {}
                Encryption::StartTls => {
                    command.args(["--tlscert", &tls_file("server.pem")]);
                    command.args(["--tlskey", &tls_file("server.key.pem")]);
                }
                Encryption::Implicit => {
                    command.args(["--smtpscert", &tls_file("server.pem")]);
                    command.args(["--smtpskey", &tls_file("server.key.pem")]);
                }
            }
            let mut child = command
                .args(["-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Some(Self { port, child, dir });
                }
                if child.try_wait().unwrap().is_some() {
                    break; // exited: most likely the port was taken
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("aiosmtpd did not start on any of 5 free ports");
    }

    /// The URL of this server, if plain, for `SmtpMailer`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, entry.path()))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .map(|raw| Received { raw })
            .collect()
    }

    /// Waits (up to 20 s) until at least `count` messages arrived; all of them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages arrived",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
