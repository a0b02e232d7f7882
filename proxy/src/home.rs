//! Sessions go back home: a session placed in another room because its own (or a more
//! preferred one) had no eligible upstream moves back once that room has had one for
//! `proxy.returnHomeMs` without a break, in its turn among the re-attachments
//! (`proxy.reattachPerSecond`), at a moment it has nothing in flight (see
//! [`crate::book::Book::can_move_quietly`]). Each session keeps its own [`Homeward`]; the
//! rooms' standing is the shared state's (`Shared::better_since`).

use std::future::pending;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::{sleep, sleep_until, Sleep};

use crate::state::Shared;

/// Where a session stands on its way home.
pub(crate) struct Homeward {
    settle: Duration,
    reranks: watch::Receiver<u64>,
    timer: Option<Pin<Box<Sleep>>>,
    /// The room has been there long enough: the timer is the session's pacing slot.
    paced: bool,
    /// The slot came: the session moves at its next quiet moment.
    due: bool,
    /// No move before this: the last one did not end in a better room.
    not_before: Instant,
}

impl Homeward {
    /// `None` when sessions stay where they are (`proxy.returnHomeMs = 0`).
    pub(crate) fn new(shared: &Shared) -> Option<Homeward> {
        let settle = Duration::from_millis(shared.cfg.return_home_ms);
        (!settle.is_zero()).then(|| Homeward {
            settle,
            reranks: shared.reranks(),
            timer: None,
            paced: false,
            due: false,
            not_before: Instant::now(),
        })
    }

    /// Whether the session should move now, if it is quiet.
    pub(crate) fn due(&self) -> bool {
        self.due
    }

    /// The session starts a move home: should it not end in a better room, the next
    /// attempt waits another settle time.
    pub(crate) fn moving(&mut self) {
        self.reset();
        self.not_before = Instant::now() + self.settle;
    }

    /// Looks again, for a session now on upstream `on` (`None`: between upstreams).
    pub(crate) fn review(&mut self, shared: &Shared, on: Option<usize>) {
        match on.and_then(|i| shared.better_since(i)) {
            None => self.reset(),
            Some(since) if self.timer.is_none() && !self.due => {
                self.paced = false;
                let at = (since + self.settle).max(self.not_before);
                self.timer = Some(Box::pin(sleep_until(at.into())));
            }
            Some(_) => {}
        }
    }

    fn reset(&mut self) {
        self.timer = None;
        self.paced = false;
        self.due = false;
    }

    /// Waits until a room's standing changes or the session's timer fires, and takes it
    /// into account. Cancel-safe: the timer is kept across calls.
    pub(crate) async fn next(&mut self, shared: &Shared, on: Option<usize>, session_id: i64) {
        let fired = tokio::select! {
            changed = self.reranks.changed() => {
                if changed.is_err() {
                    // The shared state is gone: the proxy is stopping.
                    pending::<()>().await;
                }
                false
            }
            _ = async {
                match self.timer.as_mut() {
                    Some(t) => t.await,
                    None => pending().await,
                }
            } => true,
        };
        if !fired {
            self.review(shared, on);
            return;
        }
        self.timer = None;
        match on.and_then(|i| shared.better_since(i)) {
            None => self.reset(),
            Some(since) if !self.paced => {
                let at = (since + self.settle).max(self.not_before);
                if at <= Instant::now() {
                    // Long enough: take a turn among the re-attachments.
                    self.paced = true;
                    self.timer = Some(Box::pin(sleep(shared.reattach_slot(session_id))));
                } else {
                    // The room went and came back meanwhile: its settle time starts again.
                    self.timer = Some(Box::pin(sleep_until(at.into())));
                }
            }
            Some(_) => {
                self.paced = false;
                self.due = true;
            }
        }
    }
}
