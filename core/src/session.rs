//! Sessions: id allocation, passwords and expiry, as a state machine without I/O.
//!
//! Time comes in as milliseconds from the caller (a monotonic clock in the server, a
//! seeded clock in simulations); the tracker never reads a clock itself. Expiry follows
//! ZooKeeper's `ExpiryQueue`: a session touched at `now` with timeout `t` expires at
//! `now + t` rounded *up* to the next multiple of the tick, so the tracker only has to
//! look at one bucket per tick and touching costs O(1).

use std::collections::{BTreeMap, HashMap, HashSet};

/// Mixed into every session password seed (`ZooKeeperServer.superSecret`); the same
/// constant makes passwords interchangeable with Apache ZooKeeper servers of a mixed
/// deployment, which check a reconnecting client by regenerating its password.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`: an id no session may take, because a
/// container's ephemeralOwner holds it.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;

/// `java.util.Random`, bit for bit: ZooKeeper derives session passwords from it.
pub struct JavaRandom {
    seed: i64,
}

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    pub fn new(seed: i64) -> Self {
        JavaRandom {
            seed: (seed ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        ((self.seed as u64) >> (48 - bits)) as i32
    }

    pub fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    pub fn next_bytes(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(4) {
            let mut rnd = self.next_int();
            for b in chunk {
                *b = rnd as u8;
                rnd >>= 8;
            }
        }
    }
}

/// The password ZooKeeper hands out for `session_id` (`ZooKeeperServer.generatePasswd`).
pub fn session_password(session_id: i64) -> [u8; 16] {
    let mut p = [0u8; 16];
    JavaRandom::new(session_id ^ SUPER_SECRET).next_bytes(&mut p);
    p
}

/// `SessionTrackerImpl.initializeNextSessionId`: the server id in the top byte, then 40
/// bits of milliseconds, then a 16-bit counter space. ZooKeeper 3.8 uses the monotonic
/// clock here; we take wall-clock milliseconds so that ids stay distinct across restarts
/// of the same server (the layout, which is what other servers and clients rely on, is
/// the same).
pub fn initial_session_id(server_id: u64, wall_ms: i64) -> i64 {
    let mut sid = ((wall_ms << 24) as u64 >> 8) as i64;
    sid |= (server_id as i64) << 56;
    if sid == CONTAINER_EPHEMERAL_OWNER {
        sid += 1;
    }
    sid
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: u32,
    /// Set once a closeSession for it has been prepared: it takes no new requests.
    pub closing: bool,
    expires_at: u64,
}

/// Tracks live sessions and tells which have expired.
pub struct SessionTracker {
    tick_ms: u64,
    next_id: i64,
    sessions: HashMap<i64, Session>,
    buckets: BTreeMap<u64, HashSet<i64>>,
}

impl SessionTracker {
    pub fn new(server_id: u64, tick_ms: u32, wall_ms: i64) -> Self {
        SessionTracker {
            tick_ms: tick_ms.max(1) as u64,
            next_id: initial_session_id(server_id, wall_ms),
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
        }
    }

    /// Reserves the next session id (ZooKeeper's `createSession` takes `nextSessionId++`).
    pub fn next_session_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        if self.next_id == CONTAINER_EPHEMERAL_OWNER {
            self.next_id += 1;
        }
        id
    }

    fn round_up(&self, t: u64) -> u64 {
        (t / self.tick_ms + 1) * self.tick_ms
    }

    /// Registers a session (new, or restored from a snapshot or log) and starts its clock.
    pub fn add(&mut self, id: i64, timeout_ms: u32, now_ms: u64) {
        let s = Session {
            id,
            timeout_ms,
            closing: false,
            expires_at: 0,
        };
        self.sessions.insert(id, s);
        self.touch(id, now_ms);
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// `touchSession`: false for an unknown or closing session.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        self.touch_for(id, None, now_ms)
    }

    /// `touchSession(id, timeout)`: a reconnected client's requests keep the session alive
    /// for the timeout negotiated on its connection, which may differ from the one the
    /// session was created with.
    pub fn touch_for(&mut self, id: i64, timeout_ms: Option<u32>, now_ms: u64) -> bool {
        let tick = self.tick_ms;
        let Some(s) = self.sessions.get_mut(&id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        let timeout = timeout_ms.unwrap_or(s.timeout_ms);
        let new_exp = (now_ms + timeout as u64) / tick * tick + tick;
        if new_exp == s.expires_at {
            return true;
        }
        let old = std::mem::replace(&mut s.expires_at, new_exp);
        // An emptied bucket stays until its time comes, as in ZooKeeper's `ExpiryQueue`
        // (`dump` shows it: "0 expire at …").
        if let Some(b) = self.buckets.get_mut(&old) {
            b.remove(&id);
        }
        self.buckets.entry(new_exp).or_default().insert(id);
        true
    }

    /// Takes back a closing mark whose closeSession never became durable; the session
    /// expires again after its timeout.
    pub fn reopen(&mut self, id: i64, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.closing = false;
        }
        self.touch(id, now_ms);
    }

    /// After restoring sessions from disk, makes sure new ids do not collide with them.
    pub fn bump_next_id(&mut self, ids: impl Iterator<Item = i64>) {
        let server_byte = self.next_id >> 56;
        for id in ids {
            if id >> 56 == server_byte && id >= self.next_id {
                self.next_id = id + 1;
            }
        }
    }

    /// Marks a session closing; later requests on it are refused.
    pub fn set_closing(&mut self, id: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.closing = true;
        }
    }

    /// Forgets a session whose closeSession has been applied.
    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        if let Some(b) = self.buckets.get_mut(&s.expires_at) {
            b.remove(&id);
        }
        Some(s)
    }

    /// Sessions whose deadline has passed at `now_ms`. They are marked closing (as
    /// ZooKeeper's expirer does before it submits their closeSession) and leave the
    /// expiry queue, so each is reported once.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let mut out = Vec::new();
        while let Some((&t, _)) = self.buckets.first_key_value() {
            if t > now_ms {
                break;
            }
            if let Some(ids) = self.buckets.remove(&t) {
                for id in ids {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        s.closing = true;
                        s.expires_at = 0;
                        out.push(id);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The expiry queue, earliest deadline first, for `dump` (`ExpiryQueue.dump`).
    pub fn expiry_buckets(&self) -> impl Iterator<Item = (u64, impl Iterator<Item = i64> + '_)> {
        self.buckets
            .iter()
            .map(|(t, ids)| (*t, ids.iter().copied()))
    }

    /// When the next expiry check is due, if any session is tracked.
    pub fn next_deadline(&self) -> Option<u64> {
        self.buckets.keys().next().copied()
    }

    /// The deadline a touch at `now_ms` would give a timeout of `timeout_ms`.
    pub fn deadline_for(&self, now_ms: u64, timeout_ms: u32) -> u64 {
        self.round_up(now_ms + timeout_ms as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_random_matches_the_jdk() {
        // new java.util.Random(42).nextInt() == -1170105035; the second is 234785527.
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_int(), -1170105035);
        assert_eq!(r.next_int(), 234785527);
        // new Random(0).nextBytes(new byte[5]) == {96, -76, 32, -69, 56}
        let mut b = [0u8; 5];
        JavaRandom::new(0).next_bytes(&mut b);
        assert_eq!(b.map(|x| x as i8), [96, -76, 32, -69, 56]);
    }

    #[test]
    fn session_ids_carry_the_server_id_in_the_top_byte() {
        let id = initial_session_id(5, 1_700_000_000_000);
        assert_eq!((id as u64) >> 56, 5);
        assert_eq!(id & 0xFFFF, 0, "low 16 bits are the per-server counter");
        let mut t = SessionTracker::new(0, 2000, 1_700_000_000_000);
        let a = t.next_session_id();
        let b = t.next_session_id();
        assert_eq!(b, a + 1);
        assert_eq!((a as u64) >> 56, 0);
    }

    #[test]
    fn expiry_rounds_up_to_the_tick_and_touch_postpones_it() {
        let mut t = SessionTracker::new(0, 2000, 0);
        t.add(1, 4000, 1000); // 5000 -> bucket 6000
        t.add(2, 4000, 3000); // 7000 -> bucket 8000
        assert_eq!(t.next_deadline(), Some(6000));
        assert!(t.expire(5999).is_empty());
        assert!(t.touch(1, 5500)); // 9500 -> 10000
        assert!(t.expire(8000) == vec![2]);
        assert!(!t.touch(2, 8000), "an expired session is closing");
        assert!(t.expire(9999).is_empty());
        assert_eq!(t.expire(10000), vec![1]);
        assert!(t.remove(1).is_some());
        assert!(!t.contains(1));
    }
}
