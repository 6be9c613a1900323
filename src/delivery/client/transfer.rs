//! What a transfer broken after the message data started means for its recipients
//! (`bounce-upon-transfer-failure`, `assume-delivery-upon-data-termination-timeout`).
//!
//! By default such a failure is a deferral like any other client-side failure: the recipients
//! are tried again later. Both directives exist because the receiver may already hold the
//! message: retrying then risks a duplicate, so an operator may choose to bounce instead, or —
//! for a timeout waiting for the reply to the final dot, when the data was all sent — to count
//! the message as delivered.

use super::error::{ClientError, Phase};
use crate::smtp::Reply;

/// The two directives, as the client applies them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferPolicy {
    /// `bounce-upon-transfer-failure`.
    pub bounce_upon_failure: bool,
    /// `assume-delivery-upon-data-termination-timeout`.
    pub assume_delivery_upon_termination_timeout: bool,
}

impl TransferPolicy {
    /// The reply the accepted recipients of a transaction get when `error` ended its data phase,
    /// or `None` when the error is to be handled as usual (a deferral).
    pub fn reply_for(&self, error: &ClientError) -> Option<Reply> {
        let phase = match error {
            ClientError::Timeout { phase } | ClientError::Disconnected { phase, .. } => *phase,
            _ => return None,
        };
        let timed_out = matches!(error, ClientError::Timeout { .. });
        if phase == Phase::DataTermination && timed_out && self.assume_delivery_upon_termination_timeout {
            return Some(Reply::new(
                250,
                "2.0.0",
                format!("assumed delivered: {error} (assume-delivery-upon-data-termination-timeout)"),
            ));
        }
        if matches!(phase, Phase::DataSend | Phase::DataTermination) && self.bounce_upon_failure {
            return Some(Reply::new(554, "5.4.2", format!("transfer failed: {error} (bounce-upon-transfer-failure)")));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(phase: Phase) -> ClientError {
        ClientError::Timeout { phase }
    }

    fn dropped(phase: Phase) -> ClientError {
        ClientError::disconnected(phase, None)
    }

    #[test]
    fn by_default_every_broken_transfer_is_left_to_the_caller() {
        let p = TransferPolicy::default();
        for e in [timeout(Phase::DataSend), timeout(Phase::DataTermination), dropped(Phase::DataSend)] {
            assert_eq!(p.reply_for(&e), None, "{e}");
        }
    }

    #[test]
    fn a_timeout_after_the_final_dot_is_a_delivery_when_assumed() {
        let p = TransferPolicy { assume_delivery_upon_termination_timeout: true, ..Default::default() };
        let r = p.reply_for(&timeout(Phase::DataTermination)).expect("assumed");
        assert_eq!((r.code, &*r.enhanced), (250, "2.0.0"));
        assert!(r.text.contains("timeout waiting for reply to end of data"), "{r}");
        // Only the timeout: a drop or a timeout while sending may mean the data never arrived.
        assert_eq!(p.reply_for(&dropped(Phase::DataTermination)), None);
        assert_eq!(p.reply_for(&timeout(Phase::DataSend)), None);
        assert_eq!(p.reply_for(&timeout(Phase::Rcpt)), None);
    }

    #[test]
    fn a_broken_transfer_bounces_when_asked_but_not_before_data() {
        let p = TransferPolicy { bounce_upon_failure: true, ..Default::default() };
        for e in [timeout(Phase::DataSend), dropped(Phase::DataSend), dropped(Phase::DataTermination)] {
            let r = p.reply_for(&e).expect("bounce");
            assert_eq!((r.code, &*r.enhanced), (554, "5.4.2"), "{e}");
        }
        for e in [timeout(Phase::Data), dropped(Phase::Rcpt), ClientError::Protocol("x".into())] {
            assert_eq!(p.reply_for(&e), None, "{e}");
        }
        // Both on: the timeout after the dot is assumed delivered, not bounced.
        let both = TransferPolicy { bounce_upon_failure: true, assume_delivery_upon_termination_timeout: true };
        assert_eq!(both.reply_for(&timeout(Phase::DataTermination)).unwrap().code, 250);
    }
}
