//! A real redis-server (Debian package `redis-server`) for the cluster tests: started on a free
//! loopback port without persistence, killed with SIGKILL to simulate an outage, restarted on
//! the same port. Readiness is checked by connecting, never by sleeping.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::peers::{free_port, wait_listening};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port("127.0.0.1"))
    }

    pub fn start_on(port: u16) -> RedisServer {
        let mut r = RedisServer { child: None, port };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again) on its port, empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (package redis-server)");
        self.child = Some(child);
        wait_listening(SocketAddr::from(([127, 0, 0, 1], self.port)));
    }

    /// SIGKILL: the outage.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `redis-cli` against it and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
