//! Answering a request whose asker may have stopped waiting: a management call that timed out, a
//! worker whose connection closed, a session that hung up. The answer then has nobody to go to,
//! which is no error of the answerer's; this says so once, instead of `let _ =` at every reply.

/// A reply channel that may have lost its asker.
pub trait Answer<T> {
    /// Sends `value` if anyone still waits for it.
    fn answer(self, value: T);
}

impl<T> Answer<T> for tokio::sync::oneshot::Sender<T> {
    fn answer(self, value: T) {
        if self.send(value).is_err() {
            tracing::trace!("an answer found nobody waiting for it");
        }
    }
}

impl<T> Answer<T> for std::sync::mpsc::Sender<T> {
    fn answer(self, value: T) {
        if self.send(value).is_err() {
            tracing::trace!("an answer found nobody waiting for it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Answer;

    #[test]
    fn an_answer_reaches_a_waiting_asker_and_nobody_else_is_harmed() {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        tx.answer(7);
        assert_eq!(rx.try_recv().unwrap(), 7);
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        drop(rx);
        tx.answer(7);
    }
}
