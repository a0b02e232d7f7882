//! Where a new session goes: the healthy upstreams of the proxy's own room, in proportion
//! to their weights; when none of them is healthy, those of the first room in the order of
//! preference that has one. Pure: the caller says who is healthy.
//!
//! Proportions come from smooth weighted round-robin (each pick adds every candidate's
//! weight to its credit and takes the one with the most, which then pays the total): over
//! any run of picks each upstream's share is within one session of its weight's, with no
//! randomness and no bursts on one upstream. A candidate that leaves and comes back starts
//! again from no credit, so a recovered upstream is not handed a backlog of sessions at
//! once.

use std::collections::HashMap;

/// One upstream as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its index in the proxy's upstream list.
    pub index: usize,
    pub room: String,
    pub weight: u32,
    /// Healthy, serving, within the lag bound, and (for a reconnecting session) holding
    /// the session's last seen zxid.
    pub eligible: bool,
}

/// The rooms in the order sessions go to them, and each upstream's credit.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The proxy's own room first, then the preferred others.
    rooms: Vec<String>,
    credit: HashMap<usize, i64>,
}

impl Placement {
    pub fn new(own: &str, prefer: &[String]) -> Placement {
        let mut rooms = vec![own.to_string()];
        rooms.extend(prefer.iter().filter(|r| *r != own).cloned());
        Placement {
            rooms,
            credit: HashMap::new(),
        }
    }

    /// Where `room` comes in the order sessions go to rooms: 0 for the proxy's own, then
    /// the preferred others; a room not listed comes after them all.
    pub fn rank(&self, room: &str) -> usize {
        self.rooms
            .iter()
            .position(|r| r == room)
            .unwrap_or(self.rooms.len())
    }

    /// How many ranks there are (the listed rooms, and one for any other).
    pub fn ranks(&self) -> usize {
        self.rooms.len() + 1
    }

    /// The room new sessions go to: the first with an eligible upstream.
    pub fn room<'a>(&'a self, candidates: &[Candidate]) -> Option<&'a str> {
        self.rooms
            .iter()
            .find(|r| candidates.iter().any(|c| c.eligible && c.room == **r))
            .map(String::as_str)
    }

    /// The upstream (its index) for the next new session, or `None` when no upstream of
    /// any listed room is eligible.
    pub fn pick(&mut self, candidates: &[Candidate]) -> Option<usize> {
        let room = self.room(candidates)?.to_string();
        let here: Vec<&Candidate> = candidates
            .iter()
            .filter(|c| c.eligible && c.room == room)
            .collect();
        // Those out of the running lose their credit.
        self.credit
            .retain(|i, _| here.iter().any(|c| c.index == *i));
        let total: i64 = here.iter().map(|c| i64::from(c.weight)).sum();
        let mut best: Option<(usize, i64)> = None;
        for c in &here {
            let credit = self.credit.entry(c.index).or_insert(0);
            *credit += i64::from(c.weight);
            if best.is_none_or(|(_, b)| *credit > b) {
                best = Some((c.index, *credit));
            }
        }
        let (index, _) = best?;
        if let Some(credit) = self.credit.get_mut(&index) {
            *credit -= total;
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize, room: &str, weight: u32, eligible: bool) -> Candidate {
        Candidate {
            index,
            room: room.into(),
            weight,
            eligible,
        }
    }

    fn counts(p: &mut Placement, cands: &[Candidate], n: usize) -> HashMap<usize, usize> {
        let mut m = HashMap::new();
        for _ in 0..n {
            *m.entry(p.pick(cands).expect("a pick")).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn sessions_follow_the_weights_of_the_own_room() {
        let mut p = Placement::new("B", &["A".into()]);
        let cands = [
            c(0, "A", 100, true),
            c(1, "B", 10, true),
            c(2, "B", 5, true),
            c(3, "B", 1, true),
        ];
        let m = counts(&mut p, &cands, 1_600);
        assert_eq!(m.get(&0), None, "another room while the own one is healthy");
        assert_eq!((m[&1], m[&2], m[&3]), (1_000, 500, 100));
        // Any prefix is within one session of the weights: no bursts.
        let mut p = Placement::new("B", &[]);
        let mut seen = [0f64; 4];
        for k in 1..=160 {
            seen[p.pick(&cands).expect("pick")] += 1.0;
            for (i, w) in [(1, 10.0), (2, 5.0), (3, 1.0)] {
                let want = k as f64 * w / 16.0;
                assert!((seen[i] - want).abs() <= 1.0, "after {k}: {seen:?}");
            }
        }
    }

    #[test]
    fn other_rooms_in_order_of_preference_then_home_again() {
        let mut p = Placement::new("B", &["C".into(), "A".into()]);
        let mut cands = vec![
            c(0, "A", 1, true),
            c(1, "B", 1, false),
            c(2, "C", 3, true),
            c(3, "C", 1, true),
        ];
        assert_eq!(p.room(&cands), Some("C"));
        let m = counts(&mut p, &cands, 400);
        assert_eq!((m[&2], m[&3]), (300, 100));
        cands[2].eligible = false;
        cands[3].eligible = false;
        assert_eq!(p.pick(&cands), Some(0), "C down too: A");
        cands[1].eligible = true;
        assert_eq!(p.pick(&cands), Some(1), "home again");
        cands.iter_mut().for_each(|c| c.eligible = false);
        assert_eq!(p.pick(&cands), None);
    }

    #[test]
    fn rooms_rank_in_the_order_sessions_go_to_them() {
        let p = Placement::new("B", &["C".into(), "A".into()]);
        let ranks: Vec<usize> = ["B", "C", "A", "D"].iter().map(|r| p.rank(r)).collect();
        assert_eq!(ranks, [0, 1, 2, 3]);
        assert_eq!(p.ranks(), 4);
    }

    #[test]
    fn a_returning_upstream_starts_from_no_credit() {
        let mut p = Placement::new("B", &[]);
        let mut cands = vec![c(0, "B", 1, true), c(1, "B", 1, true)];
        for _ in 0..10 {
            p.pick(&cands);
        }
        cands[1].eligible = false;
        for _ in 0..50 {
            assert_eq!(p.pick(&cands), Some(0));
        }
        cands[1].eligible = true;
        let m = counts(&mut p, &cands, 20);
        assert_eq!(
            (m[&0], m[&1]),
            (10, 10),
            "no backlog handed to the returning one"
        );
    }
}
