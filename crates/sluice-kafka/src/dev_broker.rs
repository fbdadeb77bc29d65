//! The embedded development broker: librdkafka's mock cluster, a real Kafka-protocol
//! broker on a local TCP port that any client can use. Data is in memory only and
//! topics are created on first use. For demos and tests, never production.
//!
//! The mock cluster handle is not `Send`, so it lives on its own thread until the
//! [`DevBroker`] is dropped. An optional fixed address forwards TCP to the mock's
//! random port, so a quickstart can print a stable bootstrap address.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

use crate::error::DevBrokerError;
use tokio::net::{TcpListener, TcpStream};

/// A running mock cluster.
pub struct DevBroker {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DevBroker {
    /// Start a one-broker mock cluster with `topics` created, `partitions` each.
    pub fn start(topics: &[String], partitions: u16) -> Result<Self, DevBrokerError> {
        let topics = topics.to_vec();
        let (addr_tx, addr_rx) = mpsc::channel::<Result<String, DevBrokerError>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sluice-dev-broker".into())
            .spawn(move || match MockCluster::new(1) {
                Ok(cluster) => {
                    for t in &topics {
                        if let Err(source) =
                            cluster.create_topic(t, i32::from(partitions.max(1)), 1)
                        {
                            let _ = addr_tx.send(Err(DevBrokerError::Topic {
                                topic: t.clone(),
                                source,
                            }));
                            return;
                        }
                    }
                    let _ = addr_tx.send(Ok(cluster.bootstrap_servers()));
                    // Park until asked to stop (or the owner is gone).
                    let _ = stop_rx.recv();
                    drop(cluster);
                }
                Err(e) => {
                    let _ = addr_tx.send(Err(DevBrokerError::Start(e)));
                }
            })
            .map_err(DevBrokerError::Thread)?;
        let bootstrap = addr_rx.recv().map_err(|_| DevBrokerError::Ended)??;
        Ok(Self {
            bootstrap,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The mock cluster's own bootstrap address (`127.0.0.1:PORT`).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accept TCP connections on `listen` and forward each to `target`, until the task is
/// dropped. Returns once the listener is bound.
pub async fn forward(listen: &str, target: String) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }))
}
