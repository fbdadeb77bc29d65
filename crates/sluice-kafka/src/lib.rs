//! Sluice's Kafka runtime.
//!
//! - [`runtime::KafkaRuntime`]: one shared producer per configured cluster, created inside
//!   a Pingora background service, flushed on shutdown.
//! - [`cluster::Cluster::send`]: the non-blocking enqueue plugins use; every event is
//!   counted ([`accounting::EventCounters`]) so that
//!   `attempted = acked + failed + discarded + in_flight` always holds.
//! - [`dev_broker`]: the embedded development broker (librdkafka's mock cluster).
//! - `watchdog`: replaces producers that hit a fatal error, so sends recover without a
//!   restart.
//! - [`tail`]: the `sluice tail` record printer.
//! - [`reader`], [`position`]: group-less topic readers for client streams, resumable
//!   from signed position tokens.
//! - [`error`]: typed errors (start, refusal, tail).
//! - `replay`, `quarantine`: deliver the disk spool, setting poison records aside.

pub mod accounting;
pub mod cluster;
mod context;
pub mod destination;
pub mod dev_broker;
pub mod error;
pub mod event;
pub mod metrics;
pub mod position;
mod producers;
pub mod profile_use;
mod quarantine;
pub mod reader;
mod reliable;
mod replay;
pub mod runtime;
mod shutdown;
pub mod tail;
mod watchdog;

pub use accounting::EventCounters;
pub use cluster::{Cluster, Profile};
pub use context::{spool_reason, Acked, DeliveryReport};
pub use destination::{Destination, Target};
pub use error::{DevBrokerError, ReaderError, Refused, StartError, TailError};
pub use event::OutgoingEvent;
pub use profile_use::ProfileUse;
pub use runtime::KafkaRuntime;
