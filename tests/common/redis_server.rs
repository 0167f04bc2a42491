//! A `redis-server` of the caller's own, for the Redis tests and the limiter benchmark: started
//! from `PATH` on a free loopback port (`--save "" --appendonly no`) in a directory of its own
//! (so that a test may turn persistence on), killed on drop.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// A `redis-server` child process on a loopback port, killed on drop.
pub(crate) struct Server {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Its working directory (`--dir`), removed on drop.
    dir: PathBuf,
}

fn redis_server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether a server on `port` answers `PING`.
fn pings(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl Server {
    /// A running server, or `None` (after saying so) when `redis-server` is not on `PATH`.
    pub(crate) fn start(what: &str) -> Option<Self> {
        let Some(binary) = redis_server_binary() else {
            // Straight to the process's stderr: the test harness would hide `eprintln!` of a
            // test that passes.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: redis-server not found on PATH; `{what}` did not run \
                 (install it, e.g. `apt-get install redis-server`)"
            );
            return None;
        };
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-redis-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let mut server = Self {
                binary: binary.clone(),
                port: free_port(),
                child: None,
                dir: dir.clone(),
            };
            if server.launch() {
                return Some(server);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Starts the server on its port; whether it answered `PING` within 10 s.
    fn launch(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        // (Again on every launch: a server that failed on a taken port removed it on drop.)
        std::fs::create_dir_all(&self.dir).unwrap();
        let mut child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if pings(self.port) {
                self.child = Some(child);
                return true;
            }
            if child.try_wait().unwrap().is_some() {
                return false; // exited: most likely the port was taken
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the server (SIGKILL: an outage, not a shutdown).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server: a stopped server keeps its connections
    /// open and answers nothing, as a hung one would.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts it again on the same port, empty.
    pub(crate) fn restart(&mut self) {
        assert!(self.launch(), "redis-server did not restart on its port");
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A connection for the test's own commands.
    pub(crate) async fn connection(&self) -> ConnectionManager {
        tower_jwt_auth::redis::connect(&self.url()).await.unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
