//! Spooled events Kafka will not take (a poison record) are set aside, so the records
//! behind them go on: the spool appends them to its quarantine file
//! ([`Spool::set_aside`]: `<spool.dir>/sluice-quarantine-<cluster>.seg`), and they are
//! counted in `sluice_spool_quarantined_total{cluster,reason}`. A record is
//! set aside at once for a permanent error (see [`crate::event::permanent`]), or after
//! [`MAX_ATTEMPTS`] failed deliveries while other records of the same window got
//! through (so a broker outage, which fails every record, sets nothing aside).

use std::collections::HashMap;

use sluice_spool::{Entry, RecordId, Spool};

use crate::metrics::kafka;

/// Failed deliveries of one record, while others were delivered, before it is set aside.
pub const MAX_ATTEMPTS: u32 = 5;

/// Per-record failure counts of one cluster's replayer.
#[derive(Default)]
pub struct Quarantine {
    attempts: HashMap<RecordId, u32>,
}

impl Quarantine {
    /// Forget a delivered record's failures.
    pub fn delivered(&mut self, id: RecordId) {
        self.attempts.remove(&id);
    }

    /// A failed delivery of `entry`: `permanent` errors set it aside now; others when it
    /// failed `MAX_ATTEMPTS` times while `others_delivered`. True when set aside.
    pub fn failed(
        &mut self,
        cluster: &str,
        spool: &Spool,
        entry: &Entry,
        reason: &str,
        permanent: bool,
        others_delivered: bool,
    ) -> bool {
        let why = if permanent {
            reason.to_string()
        } else {
            if !others_delivered {
                return false;
            }
            let n = self.attempts.entry(entry.id).or_insert(0);
            *n += 1;
            if *n < MAX_ATTEMPTS {
                return false;
            }
            "max_attempts".to_string()
        };
        match spool.set_aside(entry, cluster) {
            Ok(path) => {
                self.attempts.remove(&entry.id);
                log::error!(
                    "kafka cluster `{cluster}`: a spooled event Kafka will not take ({reason}) was set aside in {}",
                    path.display()
                );
                if let Some(m) = kafka() {
                    m.spool_quarantined
                        .with_label_values(&[cluster, &why])
                        .inc();
                }
                true
            }
            Err(e) => {
                log::error!("kafka cluster `{cluster}`: cannot set a poison event aside: {e}");
                false
            }
        }
    }
}
