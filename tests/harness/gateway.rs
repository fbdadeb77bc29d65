//! The real `sluice` binary under test: written config, spawned process, readiness by
//! `/readyz`, graceful stop by SIGTERM, logs kept for failure messages.

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
}

impl Gateway {
    /// Write `yaml` (with `{PORT}` and `{ADMIN}` replaced by free ports) and start the
    /// gateway; returns once `/readyz` answers 200.
    pub fn start(yaml: &str) -> Self {
        let port = free_port();
        let admin = free_port();
        let dir = scratch_dir("gw");
        let config = dir.join("sluice.yaml");
        let text = yaml
            .replace("{PORT}", &port.to_string())
            .replace("{ADMIN}", &admin.to_string());
        std::fs::write(&config, text).unwrap();
        let log = dir.join("sluice.log");
        let child = Command::new(sluice_bin())
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(
                std::fs::File::create(dir.join("stdout.log")).unwrap(),
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
        };
        let ready = wait_for("sluice /readyz", Duration::from_secs(30), || {
            if let Some(Ok(Some(status))) = gw.child.as_mut().map(|c| c.try_wait()) {
                return Some(Err(format!("sluice exited early with {status}")));
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
            let r = crate::client::get(admin, "/readyz");
            (r.status == 200).then_some(Ok(()))
        });
        if let Err(e) = ready {
            panic!("{e}\n--- log ---\n{}", gw.logs());
        }
        gw
    }

    /// The gateway's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Send SIGTERM and wait for the process to exit; returns its log.
    pub fn stop(mut self) -> String {
        if let Some(mut c) = self.child.take() {
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let status = wait_for("sluice to exit", Duration::from_secs(30), || {
                c.try_wait().ok().flatten()
            });
            assert!(
                status.success(),
                "sluice exited with {status}\n{}",
                self.logs()
            );
        }
        self.logs()
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
