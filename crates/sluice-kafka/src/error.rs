//! The Kafka side's typed errors: why the dev broker or a cluster could not start, why
//! `sluice tail` stopped, and why an event was refused before it was queued.

use rdkafka::error::KafkaError;
use sluice_spool::SpoolError;

/// The embedded development broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum DevBrokerError {
    /// librdkafka's mock cluster could not be created.
    #[error("cannot start the dev broker: {0}")]
    Start(#[source] KafkaError),
    /// A configured topic could not be created.
    #[error("dev broker: cannot create topic `{topic}`: {source}")]
    Topic {
        /// The topic.
        topic: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// The broker's thread could not be spawned.
    #[error("cannot start the dev broker thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The broker's thread ended before it reported its address.
    #[error("the dev broker thread ended unexpectedly")]
    Ended,
    /// The fixed `listen` address could not be bound.
    #[error("dev broker: cannot listen on {listen}: {source}")]
    Listen {
        /// The address.
        listen: String,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
}

/// A cluster could not start; the binary refuses to serve without its producers.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its dev broker did not start.
    #[error("kafka cluster `{cluster}`: {source}")]
    DevBroker {
        /// The cluster's name.
        cluster: String,
        /// Why.
        #[source]
        source: Box<DevBrokerError>,
    },
    /// Its spool could not be opened.
    #[error("kafka cluster `{cluster}`: spool {dir}: {source}")]
    Spool {
        /// The cluster's name.
        cluster: String,
        /// The spool directory.
        dir: String,
        /// Why.
        #[source]
        source: SpoolError,
    },
    /// librdkafka refused to create a producer.
    #[error("kafka cluster `{cluster}`: cannot create a producer: {source}")]
    Producer {
        /// The cluster's name.
        cluster: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
}

/// An event refused before it was queued; counted as discarded under `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event not queued: {reason}")]
pub struct Refused {
    /// The metric reason (`queue_full`, `not_started`, `shutting_down`, ...).
    pub reason: String,
}

/// `sluice tail` stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// The consumer could not be created.
    #[error("cannot create a consumer: {0}")]
    Consumer(#[source] KafkaError),
    /// The brokers did not answer a metadata request.
    #[error("cannot read metadata from {brokers}: {source}")]
    Metadata {
        /// The bootstrap servers.
        brokers: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// The topic has no partitions after 30 s.
    #[error("topic `{0}` has no partitions (does it exist?)")]
    NoPartitions(String),
    /// Assigning or consuming failed.
    #[error("{0}")]
    Consume(#[from] KafkaError),
}

/// A client stream's reader could not be opened or positioned.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The consumer could not be created.
    #[error("cannot create a consumer: {0}")]
    Consumer(#[source] KafkaError),
    /// The topic's metadata could not be read.
    #[error("metadata of `{topic}`: {source}")]
    Metadata {
        /// The topic.
        topic: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// The topic does not exist (or has no partitions).
    #[error("topic `{0}` has no partitions")]
    NoPartitions(String),
    /// Looking up offsets or assigning failed.
    #[error("{0}")]
    Kafka(#[from] KafkaError),
    /// The blocking positioning task did not finish.
    #[error("the positioning task failed: {0}")]
    Task(String),
}
