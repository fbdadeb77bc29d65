//! `plugins.kafka-cache:` — the plugin's configuration. These docs are the user docs
//! (mirrored in the crate README).

use serde::Deserialize;
use sluice_core::config::units::{ByteSize, HumanDuration};

/// Configuration of one `kafka-cache` instance.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaCacheConfig {
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// The topic whose latest record per key is served (typically compacted). Required.
    pub topic: String,
    /// The item key from the request, a template such as `{path.2}`. When it renders
    /// empty (e.g. `GET /items/`), the request lists items instead. Required.
    pub key: String,
    /// Memory for keys and values (each entry also counts 96 bytes of bookkeeping).
    /// Records that do not fit are not kept and reads that depend on them get `507`.
    /// Default `64MiB`.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Items per list page when the request does not say (`?limit=`). Default `100`.
    #[serde(default = "default_page")]
    pub page_size: usize,
    /// Largest `?limit=` accepted. Default `1000`.
    #[serde(default = "default_max_page")]
    pub max_page_size: usize,
    /// How old the view may be before reads get `503`: the time since it was last known
    /// to hold everything its topic had (confirmed every second while its brokers are
    /// connected and it keeps up). A broker outage ends in `503` after this long.
    /// Default `60s`.
    #[serde(default = "default_max_staleness")]
    pub max_staleness: HumanDuration,
}

fn default_cluster() -> String {
    "default".into()
}
const fn default_max_bytes() -> ByteSize {
    ByteSize(64 << 20)
}
const fn default_page() -> usize {
    100
}
const fn default_max_page() -> usize {
    1000
}
const fn default_max_staleness() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}
