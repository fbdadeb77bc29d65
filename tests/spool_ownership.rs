//! The spool owns only what it created. Directories under `spool.dir` that are not Sluice
//! instance directories of the same cluster are never written to, adopted or removed;
//! events accepted for one cluster are replayed into that cluster only, also when
//! another cluster's Sluice shares the spool root; spool files are private (0700/0600).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::{free_port, scratch_dir, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn gateway(cluster: &str, brokers: &str, spool: &Path) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    {cluster}:
      brokers: ["{brokers}"]
      delivery_timeout: 2s
      spool: {{ dir: "{}", max_bytes: 64MiB }}
routes:
  - id: ingest
    match: {{ paths: ["/ingest"], methods: [POST] }}
    plugins:
      kafka-divert: {{ cluster: {cluster}, topic: ingest, acks: spool, idempotency: {{ scope: global }} }}
"#,
        spool.display()
    ))
}

fn instance_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sluice-"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn what_the_spool_did_not_create_is_left_alone() {
    let root = scratch_dir("spool-root").join("spool");
    std::fs::create_dir_all(root.join("keep-me/sub")).unwrap();
    std::fs::write(root.join("keep-me/sub/notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(root.join("sluice-lookalike")).unwrap();
    // An empty directory in the layout of earlier versions (no marker).
    std::fs::create_dir_all(root.join("1700000000000-1-0")).unwrap();
    std::fs::write(root.join("1700000000000-1-0/LOCK"), "").unwrap();
    let nobody = format!("127.0.0.1:{}", free_port());
    // Two processes, two full adoption passes (each logs what it leaves alone).
    for _ in 0..2 {
        let gw = gateway("default", &nobody, &root);
        for dir in ["keep-me", "sluice-lookalike", "1700000000000-1-0"] {
            wait_for("the foreign directory is reported", WAIT, || {
                gw.logs()
                    .contains(&format!("{}/{dir} alone", root.display()))
                    .then_some(())
            });
        }
        drop(gw);
    }
    assert_eq!(
        std::fs::read_to_string(root.join("keep-me/sub/notes.txt")).unwrap(),
        "mine"
    );
    assert!(
        !root.join("keep-me/LOCK").exists(),
        "nothing written into it"
    );
    assert!(!root.join("sluice-lookalike/LOCK").exists());
    assert!(root.join("1700000000000-1-0/LOCK").exists());
}

#[test]
fn events_are_replayed_only_into_their_own_cluster() {
    let kafka = Kafka::start();
    kafka.create_topic("ingest", 1);
    let root = scratch_dir("spool-shared").join("spool");
    // `prod` accepts three events while its broker is frozen, then dies with them.
    kafka.pause();
    let mut prod = gateway("prod", &kafka.bootstrap, &root);
    for i in 0..3 {
        let r = request(
            prod.port,
            "POST",
            "/ingest",
            &[],
            format!("prod-{i}").as_bytes(),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json()["spooled"], true);
    }
    let dirs = instance_dirs(&root);
    assert_eq!(dirs.len(), 1);
    let prod_dir = dirs[0].clone();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&prod_dir), 0o700);
    for f in std::fs::read_dir(&prod_dir).unwrap() {
        let f = f.unwrap().path();
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    prod.kill9();
    kafka.resume();

    // `staging`, same spool root and broker: it leaves prod's events alone (it replays
    // its own one event, not prod's three).
    let staging = gateway("staging", &kafka.bootstrap, &root);
    wait_for("prod's directory is reported", WAIT, || {
        staging
            .logs()
            .contains("it holds events of another cluster (cluster prod")
            .then_some(())
    });
    assert!(prod_dir.exists());
    let r = request(staging.port, "POST", "/ingest", &[], b"staging-0");
    assert_eq!(r.status, 202);
    wait_sum(
        staging.admin,
        "sluice_spool_replayed_total",
        &[("cluster", "staging")],
        1.0,
    );
    drop(staging);

    // `prod` again: it adopts its own directory and replays the three events.
    let prod = gateway("prod", &kafka.bootstrap, &root);
    wait_sum(
        prod.admin,
        "sluice_spool_replayed_total",
        &[("cluster", "prod")],
        3.0,
    );
    let mut values: Vec<String> = read_topic(
        &kafka.bootstrap,
        "ingest",
        1,
        Duration::from_millis(500),
        WAIT,
    )
    .iter()
    .map(|r| String::from_utf8_lossy(&r.value).into_owned())
    .collect();
    // (A request the frozen broker had already received may also have been written
    // when it woke up: at least once, so compare without duplicates.)
    values.sort();
    values.dedup();
    assert_eq!(values, ["prod-0", "prod-1", "prod-2", "staging-0"]);
    wait_for("prod's old directory removed once drained", WAIT, || {
        (!prod_dir.exists()).then_some(())
    });
}
