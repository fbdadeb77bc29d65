//! The real `sluice` binary under test: written config, spawned process, readiness by
//! `/readyz`, signals (SIGTERM, SIGKILL, SIGQUIT, SIGHUP), graceful upgrades, resident
//! memory, logs kept for failure messages.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{free_port, scratch_dir, wait_for};

/// Path of the `sluice` binary: `$SLUICE_BIN`, else next to the test executable's
/// target directory (`target/<profile>/sluice`).
pub fn sluice_bin() -> PathBuf {
    if let Ok(p) = std::env::var("SLUICE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test>-<hash>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("sluice");
    assert!(
        bin.exists(),
        "{} not found: build it first (`cargo build -p sluice`; scripts/test does this)",
        bin.display()
    );
    bin
}

/// Run `sluice ARGS` to completion.
pub fn run_sluice(args: &[&str]) -> Output {
    Command::new(sluice_bin()).args(args).output().unwrap()
}

/// A running gateway; killed (SIGKILL) when dropped unless stopped before.
pub struct Gateway {
    /// The proxy port.
    pub port: u16,
    /// The admin port.
    pub admin: u16,
    child: Option<Child>,
    log: PathBuf,
    /// The config file.
    pub config: PathBuf,
    /// A scratch directory of this gateway (`{DIR}` in the config).
    pub dir: PathBuf,
}

impl Gateway {
    /// Write `yaml` (with `{PORT}`, `{ADMIN}` replaced by free ports and `{DIR}` by a
    /// scratch directory) and start the gateway; returns once `/readyz` answers 200.
    pub fn start(yaml: &str) -> Self {
        Self::spawn(yaml, true)
    }

    /// As [`Gateway::start`]; waits for `/readyz` only when `wait`.
    pub fn spawn(yaml: &str, wait: bool) -> Self {
        let port = free_port();
        let admin = free_port();
        let dir = scratch_dir("gw");
        let config = dir.join("sluice.yaml");
        let text = yaml
            .replace("{PORT}", &port.to_string())
            .replace("{ADMIN}", &admin.to_string())
            .replace("{DIR}", &dir.display().to_string());
        std::fs::write(&config, text).unwrap();
        Self::launch(port, admin, dir, config, &[], wait)
    }

    /// Start another process on the same config (same ports and directories), e.g.
    /// after this one was killed; waits for `/readyz` when `wait`.
    pub fn restart_like(&self, extra_args: &[&str], wait: bool) -> Self {
        Self::launch(
            self.port,
            self.admin,
            self.dir.clone(),
            self.config.clone(),
            extra_args,
            wait,
        )
    }

    fn launch(
        port: u16,
        admin: u16,
        dir: PathBuf,
        config: PathBuf,
        extra: &[&str],
        wait: bool,
    ) -> Self {
        let n = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let log = dir.join(format!("sluice-{n}.log"));
        let child = Command::new(sluice_bin())
            .args(extra)
            .arg("-c")
            .arg(&config)
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::from(
                std::fs::File::create(dir.join(format!("stdout-{n}.log"))).unwrap(),
            ))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let mut gw = Self {
            port,
            admin,
            child: Some(child),
            log,
            config,
            dir,
        };
        if wait {
            gw.wait_ready();
        }
        gw
    }

    /// Wait until `/readyz` answers 200 (panics with the log if the process exits).
    pub fn wait_ready(&mut self) {
        let admin = self.admin;
        let ready = wait_for("sluice /readyz", Duration::from_secs(30), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Some(Err(format!("sluice exited early with {status}")));
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
            let r = crate::client::get(admin, "/readyz");
            (r.status == 200).then_some(Ok(()))
        });
        if let Err(e) = ready {
            panic!("{e}\n--- log ---\n{}", self.logs());
        }
    }

    /// Whether the process has exited, and its log.
    pub fn exited(&mut self) -> (bool, String) {
        let exited = matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(Some(_))));
        (exited, self.logs())
    }

    /// The gateway's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// Send a signal.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Wait for the process to exit after a signal; returns (success, log).
    pub fn wait_exit(&mut self, limit: Duration) -> (bool, String) {
        let mut ok = false;
        if let Some(mut c) = self.child.take() {
            let status = wait_for("sluice to exit", limit, || c.try_wait().ok().flatten());
            ok = status.success();
        }
        (ok, self.logs())
    }

    /// Send SIGTERM and wait for the process to exit; returns its log.
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let (ok, log) = self.wait_exit(Duration::from_secs(60));
        assert!(ok, "sluice did not exit cleanly\n{log}");
        log
    }

    /// Write `yaml` (`{PORT}` and `{ADMIN}` filled in) as the configuration file.
    pub fn write_config(&self, yaml: &str) {
        let text = yaml
            .replace("{PORT}", &self.port.to_string())
            .replace("{ADMIN}", &self.admin.to_string());
        std::fs::write(&self.config, text).unwrap();
    }

    /// Write `yaml` (`{PORT}` and `{ADMIN}` filled in) as the configuration, send `SIGHUP`
    /// and wait until the `n`-th successful reload is counted.
    pub fn reload(&self, yaml: &str, n: f64) {
        self.write_config(yaml);
        self.signal(libc::SIGHUP);
        wait_for("the reload", Duration::from_secs(30), || {
            let s = crate::metrics::scrape(self.admin);
            (s.sum("sluice_config_reloads_total", &[("result", "success")]) == n).then_some(())
        });
    }

    /// `kill -9`: no flush, no shutdown (ports and directories stay for a restart).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
