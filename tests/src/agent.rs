//! A running `edge-agent` binary for end-to-end tests and benchmarks: verdicts read from
//! stdout and log lines from stderr as they come, waits on what they say, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Generous: a failure guard, never a synchronisation.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A running `edge-agent`, its output collected as it comes.
pub struct Agent {
    child: Child,
    stdout: Receiver<Value>,
    stderr: Receiver<String>,
    pub verdicts: Vec<Value>,
    pub logs: Vec<String>,
}

impl Agent {
    /// Starts `binary` with `args`, stdout read as NDJSON verdicts, stderr as log lines.
    pub fn start(binary: &Path, args: &[&str]) -> Self {
        Self::start_with_env(binary, args, &[])
    }

    /// [`Agent::start`] with these variables set in the agent's environment.
    pub fn start_with_env(binary: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .envs(env.iter().copied())
            // The sink's debug line says what the spool accepted, the pipeline's what it judged;
            // the tests check it all arrives.
            .env(
                "RUST_LOG",
                "info,edge_agent::sink=debug,edge_agent::ship=debug,edge_agent::pipeline=debug",
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the agent starts");
        let (out_tx, stdout) = channel();
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line).expect("every stdout line is JSON");
                if out_tx.send(value).is_err() {
                    break;
                }
            }
        });
        let (err_tx, stderr) = channel();
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if err_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdout,
            stderr,
            verdicts: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// `binary run --simulate --speed SPEED --config CONFIG EXTRA…`: the agent on the
    /// simulated chip, as most end-to-end tests run it.
    pub fn simulated(binary: &Path, config: &Path, speed: &str, extra: &[&str]) -> Self {
        let config = config.to_str().expect("a UTF-8 config path");
        let mut args = vec!["run", "--simulate", "--speed", speed, "--config", config];
        args.extend_from_slice(extra);
        Self::start(binary, &args)
    }

    /// Where the agent says it serves metrics (its log line), once it says so.
    pub fn metrics_addr(&mut self) -> SocketAddr {
        self.until_log("metrics on http://");
        let line = self
            .logs
            .iter()
            .find(|l| l.contains("metrics on http://"))
            .expect("the line just waited for");
        let after = line.split("metrics on http://").nth(1).expect("an address");
        after
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("IP:port")
    }

    /// Collects output until a verdict satisfies `done`.
    pub fn until_verdict(&mut self, what: &str, done: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.drain_logs();
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .stdout
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(verdict) => {
                    let hit = done(&verdict);
                    self.verdicts.push(verdict);
                    if hit {
                        return;
                    }
                }
                Err(_) if Instant::now() >= deadline => {
                    panic!(
                        "no verdict {what} within {PATIENCE:?}; logs:\n{}",
                        self.logs.join("\n")
                    )
                }
                Err(_) => {}
            }
        }
    }

    /// Collects output until a log line contains `needle`.
    pub fn until_log(&mut self, needle: &str) {
        self.until_log_where(needle, |line| line.contains(needle));
    }

    /// Collects output until a log line satisfies `done`; `what` names it in the failure.
    pub fn until_log_where(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        self.until_logs(what, |logs| logs.iter().any(|l| done(l)));
    }

    /// Collects output until the log so far satisfies `done`.
    pub fn until_logs(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.logs) {
            while let Ok(verdict) = self.stdout.try_recv() {
                self.verdicts.push(verdict);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line {what:?}; logs:\n{}",
                self.logs.join("\n")
            );
            if let Ok(line) = self
                .stderr
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                self.logs.push(line);
            }
        }
    }

    fn drain_logs(&mut self) {
        while let Ok(line) = self.stderr.try_recv() {
            self.logs.push(line);
        }
    }

    /// SIGKILL: no chance to flush or save anything. Answers what it printed until then.
    pub fn kill(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut logs = std::mem::take(&mut self.logs);
        logs.extend(self.stderr.iter());
        logs
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM, then everything it printed until it exited.
    pub fn stop(mut self) -> (ExitStatus, Vec<Value>, Vec<String>) {
        self.signal("TERM");
        let status = self.child.wait().expect("the agent exits");
        let mut verdicts = std::mem::take(&mut self.verdicts);
        verdicts.extend(self.stdout.iter());
        let mut logs = std::mem::take(&mut self.logs);
        logs.extend(self.stderr.iter());
        (status, verdicts, logs)
    }
}

/// A test that fails half-way still stops what it started.
impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Writes `dir/agent.toml` for a test: sensor `kitchen` on `test-host`, state in
/// `dir/state`, `function` with a 300 M fuel budget watched every 20 ms, windows of 64
/// every 16. `params` (a `[function.params]` table, or nothing) comes before `[window]`;
/// `tail` is appended after `hop`, so a bare key there lands in `[window]`.
pub fn write_test_config(dir: &Path, function: &Path, params: &str, tail: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        r#"[agent]
sensor_id = "kitchen"
host_id = "test-host"

[sensor]
state_dir = "{state}"

[function]
path = "{function}"
fuel_per_call = 300000000
watch_interval_ms = 20

{params}[window]
size = 64
hop = 16
{tail}"#,
        state = dir.join("state").display(),
        function = function.display(),
    );
    std::fs::write(&path, text).expect("the test config is written");
    path
}

/// A record's time field as Unix ms: RFC 3339 text does not sort as time does (a dropped
/// fraction puts `12:00:03Z` after `12:00:03.5Z`), so tests compare these, never the text.
pub fn time_ms(record: &Value, field: &str) -> i64 {
    let text = record[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is a string in {record}"));
    edge_agent::series::parse_timestamp(text)
        .unwrap_or_else(|e| panic!("`{field}` of {record} is a time: {e}"))
}

/// `GET path` over HTTP/1.1 to the agent's metrics server; answers the status code, the
/// header block and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("the metrics server accepts");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("a read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("the request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the response is read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, head.to_owned(), body.to_owned())
}

/// Asks `/health` until it answers `status`; answers its JSON.
pub fn until_health(addr: SocketAddr, status: u16) -> Value {
    until_health_where(addr, &format!("status {status}"), |got, _| got == status)
}

/// Asks `/health` until `done(status, json)` holds; answers its JSON.
pub fn until_health_where(
    addr: SocketAddr,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (got, _, body) = http_get(addr, "/health");
        let json: Value = serde_json::from_str(&body).expect("JSON from /health");
        if done(got, &json) {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "/health never {what}; last: {got} {body}"
        );
        // Polling a server that has no way to notify: the deadline above is the guard.
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// User plus system CPU time of `pid`, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc is there");
    // Fields after the command name (which may hold spaces) start at ") ".
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split(' ')
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
    // USER_HZ, which /proc counts in, is 100 on every Linux the agent runs on.
    ticks / 100.0
}
