//! A throw-away PostgreSQL cluster of the caller's own: `initdb` into a directory of its own,
//! `postgres` on a free loopback port, trust authentication for the `postgres` superuser,
//! stopped and removed on drop. Run as root, the cluster belongs to `nobody` (PostgreSQL
//! refuses to run as root).

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A `postgres` child process on a loopback port, killed and removed on drop.
pub(crate) struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// The directory of `initdb` and `postgres`: on `PATH`, or Debian's
/// `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()));
    on_path
        .map(|dir| {
            // Debian links the tools into /usr/local/bin or /usr/bin; `postgres` itself is
            // only in the versioned directory.
            std::fs::canonicalize(dir.join("initdb"))
                .ok()
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
                .unwrap_or(dir)
        })
        .or_else(|| {
            let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .ok()?
                .flatten()
                .map(|entry| entry.path().join("bin"))
                .filter(|bin| bin.join("initdb").is_file())
                .collect();
            versions.sort();
            versions.pop()
        })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // `id -u` rather than libc: the tests forbid unsafe code like the crate.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `program` as the cluster's owner: `nobody` when running as root.
fn as_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_owner(path: &Path) {
    if is_root() {
        chown(path, Some(65534), Some(65534)).unwrap();
    }
}

impl Postgres {
    /// A running, empty cluster, or `None` (after saying so) when PostgreSQL is not
    /// installed.
    pub(crate) fn start(what: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL (initdb) not found; `{what}` did not run \
                 (install it, e.g. `apt-get install postgresql`)"
            );
            return None;
        };
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tower-jwt-auth-pg-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        give_to_owner(&dir);
        let status = as_owner(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("--no-instructions")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let mut server = Self {
            bin,
            dir,
            port: 0,
            child: None,
        };
        // A port found free may be taken before the server binds it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return Some(server);
            }
        }
        panic!("postgres did not start on any of 5 free ports");
    }

    /// Starts `postgres` on the cluster's port; whether it accepted connections within 20 s.
    fn launch(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let mut child = as_owner(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() && self.ready() {
                self.child = Some(child);
                return true;
            }
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Whether the server accepts connections (`pg_isready`).
    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
            .status()
            .is_ok_and(|status| status.success())
    }

    /// The URL of database `postgres` as the superuser.
    pub(crate) fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of database `name` as the superuser.
    pub(crate) fn url_of(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The ids of the server's processes: the postmaster and its children (the backends
    /// that serve open connections).
    fn processes(&self) -> Vec<u32> {
        let Some(main) = self.child.as_ref().map(Child::id) else {
            return Vec::new();
        };
        let mut all = vec![main];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The parent is the second field after the parenthesised command name.
            let parent = stat
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|ppid| ppid.parse::<u32>().ok());
            if parent == Some(main) {
                all.push(pid);
            }
        }
        all
    }

    /// Sends `signal` (`STOP`, `CONT`) to every process of the server: stopped, it keeps its
    /// connections open and answers nothing, as a hung database would.
    pub(crate) fn signal(&self, signal: &str) {
        for pid in self.processes() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Kills the server (SIGKILL to every process: a crash, not a shutdown).
    pub(crate) fn kill(&mut self) {
        let pids = self.processes();
        for pid in &pids {
            // A child may be gone already: say nothing.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        // The children exit on their own once their parent is gone.
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Starts the server again on the same port and data (crash recovery included).
    pub(crate) fn restart(&mut self) {
        // A stale lock file names a dead process; postgres removes it itself.
        assert!(self.launch(), "postgres did not restart on its port");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
