//! Delivery through the disk spool: at-least-once sending for mirrored events, durable
//! spooling for divert routes with `acks: spool`.
//!
//! Order: while the spool holds events, new at-least-once events are appended behind
//! them instead of going to Kafka directly, so per key they reach Kafka in the order
//! they were produced.

use std::sync::Arc;

use sluice_spool::SpoolError;
use tokio::sync::oneshot;

use crate::accounting::EventCounters;
use crate::cluster::Cluster;
use crate::context::{now_ms, spool_event, spool_reason};
use crate::error::Refused;
use crate::event::OutgoingEvent;

impl Cluster {
    /// At-least-once: hand the event to Kafka, or to the spool when Kafka cannot take it
    /// (queue full, delivery failed, or older events are still spooled). Without a spool
    /// this is [`Cluster::send`].
    pub fn send_reliable(&self, event: &OutgoingEvent, counters: &Arc<EventCounters>) {
        let Some(spool) = self.spool() else {
            return self.send(event, counters);
        };
        if spool.pending() > 0 {
            counters.attempted();
            return spool_event(spool, event.clone(), counters.clone());
        }
        // With `spool_on_failure`, a refusal is not counted: the event stays in flight
        // and is settled by the spool.
        if let Err(Refused { reason: why }) = self.enqueue(event, Some(counters), None, None, true)
        {
            if crate::event::permanent_reason(&why) {
                // No retry can deliver it: counted failed, not spooled.
                counters.failed(&why);
                return;
            }
            log::debug!("spooling an event Kafka could not queue: {why}");
            spool_event(spool, event.clone(), counters.clone());
        }
    }

    /// Write the event durably to the spool (synced before the receiver fires) for later
    /// delivery. `Err` is the refusal reason (no spool, full, busy).
    pub fn spool_durably(
        &self,
        event: &OutgoingEvent,
        counters: &Arc<EventCounters>,
    ) -> Result<oneshot::Receiver<Result<(), SpoolError>>, &'static str> {
        counters.attempted();
        let Some(spool) = self.spool() else {
            counters.discarded("no_spool");
            return Err("no_spool");
        };
        let (tx, rx) = oneshot::channel();
        let c = counters.clone();
        let done = Box::new(move |r: Result<(), SpoolError>| {
            match &r {
                Ok(()) => c.spooled(),
                Err(e) => c.discarded(spool_reason(e)),
            }
            let _ = tx.send(r);
        });
        let ts = event.timestamp_ms.unwrap_or_else(now_ms);
        match spool.append(ts, event.encode(), true, done) {
            Ok(()) => Ok(rx),
            Err(e) => {
                counters.discarded(spool_reason(&e));
                Err(spool_reason(&e))
            }
        }
    }
}
