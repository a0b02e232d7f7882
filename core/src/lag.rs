//! How far a replica is behind its leader, in milliseconds: since when it has known
//! that the leader has a transaction it does not have. The leader's pings (a Java
//! leader's PING, a publisher's heartbeat) say how far the leader is; each new position
//! is marked with the local time it arrived. The lag is the age of the oldest mark the
//! replica has not reached: 0 once it has everything the leader had announced.
//!
//! Marks are local arrival times, so no two machines' clocks are compared. The figure
//! is a lower bound of the age of the oldest transaction missing here, short of it by
//! at most one ping interval (a transaction committed just after a ping is marked at
//! the next one), and it includes a backlog in any queue on the way: the pings travel
//! ahead of the transactions (datagrams off the stream), so a backlogged stream shows.

use std::collections::VecDeque;

/// Marks kept at most: at two pings a second, over half an hour behind. Past that the
/// oldest marks (the ones that count) are kept and newer ones dropped.
const MAX_MARKS: usize = 4096;

/// The leader positions a replica has been told of and not yet reached.
#[derive(Debug, Default, Clone)]
pub struct Behind {
    /// (leader zxid, local ms it was heard), zxids strictly increasing.
    marks: VecDeque<(i64, u64)>,
}

impl Behind {
    /// The leader is at `leader_zxid` (heard at `now_ms`); this replica has `have`.
    pub fn leader_at(&mut self, leader_zxid: i64, have: i64, now_ms: u64) {
        self.reached(have);
        if leader_zxid <= have || self.marks.len() >= MAX_MARKS {
            return;
        }
        if self.marks.back().is_none_or(|&(z, _)| leader_zxid > z) {
            self.marks.push_back((leader_zxid, now_ms));
        }
    }

    /// This replica now has everything up to `have`.
    pub fn reached(&mut self, have: i64) {
        while self.marks.front().is_some_and(|&(z, _)| z <= have) {
            self.marks.pop_front();
        }
    }

    /// How long (ms) this replica, having `have`, has been behind a position the leader
    /// announced; 0 when it has everything announced.
    pub fn lag_ms(&self, have: i64, now_ms: u64) -> u64 {
        let first = self.marks.partition_point(|&(z, _)| z <= have);
        self.marks
            .get(first)
            .map_or(0, |&(_, at)| now_ms.saturating_sub(at))
    }

    /// Forget everything (a new leader, a new sync).
    pub fn clear(&mut self) {
        self.marks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_position_not_reached_sets_the_lag() {
        let mut b = Behind::default();
        b.leader_at(10, 10, 1_000);
        assert_eq!(b.lag_ms(10, 5_000), 0, "caught up: no lag however long ago");
        b.leader_at(12, 10, 1_000);
        b.leader_at(15, 10, 1_500);
        b.leader_at(15, 10, 2_000);
        assert_eq!(b.lag_ms(10, 2_000), 1_000, "behind 12 since 1,000");
        assert_eq!(b.lag_ms(12, 2_000), 500, "behind 15 since 1,500");
        assert_eq!(b.lag_ms(15, 2_000), 0);
        b.reached(13);
        assert_eq!(b.lag_ms(13, 2_500), 1_000);
        b.leader_at(20, 15, 3_000);
        assert_eq!(b.lag_ms(15, 3_100), 100, "15 reached, 20 heard at 3,000");
        b.clear();
        assert_eq!(b.lag_ms(15, 9_000), 0);
    }

    #[test]
    fn a_replica_behind_for_long_keeps_its_oldest_marks() {
        let mut b = Behind::default();
        for i in 0..(MAX_MARKS as i64 + 100) {
            b.leader_at(i + 1, 0, i as u64);
        }
        assert_eq!(b.marks.len(), MAX_MARKS);
        assert_eq!(b.lag_ms(0, 10_000), 10_000, "since the first mark");
        // A position beyond the dropped marks: reaching the last kept one leaves none.
        assert_eq!(b.lag_ms(MAX_MARKS as i64, 10_000), 0);
    }

    #[test]
    fn a_ping_behind_what_the_replica_has_marks_nothing() {
        let mut b = Behind::default();
        b.leader_at(5, 8, 100);
        assert_eq!(b.lag_ms(8, 200), 0);
        // The clock going backwards (a test's clock, a reset) never underflows.
        b.leader_at(9, 8, 500);
        assert_eq!(b.lag_ms(8, 400), 0);
    }
}
