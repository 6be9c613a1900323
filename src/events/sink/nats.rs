//! The NATS sink: each event is published to JetStream on the sink's `subject`, with its id as
//! `Nats-Msg-Id` so the stream drops a copy sent again after a retry or a restart (within the
//! stream's duplicate window). A batch is delivered when JetStream has acknowledged every event.
//! A server unreachable at start is no error: the sink connects when it first has a batch,
//! and again after every failure.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};

use super::{Batch, SinkError};

/// How long connecting, or one batch's acknowledgements, may take.
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct NatsSink {
    url: String,
    subject: String,
    js: Option<jetstream::Context>,
}

impl NatsSink {
    pub fn new(url: &str, subject: &str) -> NatsSink {
        NatsSink { url: url.to_string(), subject: subject.to_string(), js: None }
    }

    pub async fn deliver(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let js = match &self.js {
            Some(js) => js.clone(),
            None => {
                let js = self.connect().await?;
                self.js = Some(js.clone());
                js
            }
        };
        match tokio::time::timeout(TIMEOUT, self.publish(&js, batch)).await {
            Ok(result) => result,
            Err(_) => Err(SinkError::Timeout(TIMEOUT)),
        }
    }

    async fn publish(&self, js: &jetstream::Context, batch: &Batch) -> Result<(), SinkError> {
        let mut acks = Vec::with_capacity(batch.events.len());
        for e in &batch.events {
            let message =
                PublishMessage::build().payload(bytes::Bytes::from(e.json.clone())).message_id(e.id.to_string());
            let ack = js
                .send_publish(self.subject.clone(), message)
                .await
                .map_err(|err| SinkError::Nats(format!("publish event {}: {err}", e.id)))?;
            acks.push((e.id, ack));
        }
        for (id, ack) in acks {
            ack.await.map_err(|err| SinkError::Nats(format!("event {id} not acknowledged: {err}")))?;
        }
        Ok(())
    }

    async fn connect(&self) -> Result<jetstream::Context, SinkError> {
        let failed = |reason: String| SinkError::Connect { target: self.url.clone(), reason };
        let options = async_nats::ConnectOptions::new().connection_timeout(TIMEOUT).name("ember");
        let client = tokio::time::timeout(TIMEOUT + Duration::from_secs(1), options.connect(self.url.as_str()))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        let mut js = jetstream::new(client);
        js.set_timeout(TIMEOUT);
        Ok(js)
    }
}
