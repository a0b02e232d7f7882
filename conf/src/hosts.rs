//! Weighted host lists: the servers a client-side component connects to, each with a
//! weight and the room it is in. One syntax for the proxy's upstreams and the relay's
//! upstream lists:
//!
//! * connect-string form: `host:port;weight=10;room=B,host2:port2;room=C` — entries
//!   separated by commas (as a ZooKeeper connect string), attributes by semicolons, in any
//!   order, each at most once;
//! * TOML: an array whose items are either such a string or a table
//!   `{ address = "zk-b1.example:2181", room = "B", weight = 10 }`.
//!
//! A weight is a whole number from 1 to 1,000,000 (default 1); a room is letters, digits,
//! '.', '_' and '-' (it travels in certificates); a host is a name, an IPv4 literal or a
//! bracketed IPv6 literal, resolved when connecting, not here.

use std::fmt;

use crate::relay::{check_room, check_upstream};

/// The largest weight an entry may carry.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// One server of a weighted host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// `host:port` as written (a name is resolved at each connection).
    pub address: String,
    /// Its share of new sessions among the healthy entries of its room.
    pub weight: u32,
    /// The room (data centre) it is in, if the list says.
    pub room: Option<String>,
}

impl HostEntry {
    /// An entry of weight 1 in no named room.
    pub fn plain(address: &str) -> HostEntry {
        HostEntry {
            address: address.to_string(),
            weight: 1,
            room: None,
        }
    }
}

impl fmt::Display for HostEntry {
    /// The connect-string form, which [`parse_host`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)?;
        if self.weight != 1 {
            write!(f, ";weight={}", self.weight)?;
        }
        if let Some(r) = &self.room {
            write!(f, ";room={r}")?;
        }
        Ok(())
    }
}

/// A weight as written: 1 to [`MAX_WEIGHT`].
pub fn check_weight(value: &str) -> Result<u32, String> {
    match value.trim().parse::<u64>() {
        Ok(w) if (1..=u64::from(MAX_WEIGHT)).contains(&w) => Ok(w as u32),
        _ => Err(format!(
            "weight \"{value}\" is not a whole number from 1 to {MAX_WEIGHT}"
        )),
    }
}

/// One entry in connect-string form: `host:port[;weight=N][;room=R]`.
pub fn parse_host(entry: &str) -> Result<HostEntry, String> {
    let mut parts = entry.split(';').map(str::trim);
    let address = parts.next().unwrap_or_default();
    check_upstream(address)?;
    let mut host = HostEntry::plain(address);
    let (mut weight_seen, mut room_seen) = (false, false);
    for attr in parts {
        let bad = |why: &str| format!("\"{entry}\": {why}");
        let (key, value) = attr.split_once('=').ok_or_else(|| {
            bad(&format!(
                "\"{attr}\" is not key=value (weight=N or room=NAME)"
            ))
        })?;
        match key.trim() {
            "weight" if !weight_seen => {
                host.weight = check_weight(value).map_err(|e| bad(&e))?;
                weight_seen = true;
            }
            "room" if !room_seen => {
                host.room = Some(
                    check_room(value.trim())
                        .map_err(|e| bad(&format!("\"{}\" is not a room: {e}", value.trim())))?,
                );
                room_seen = true;
            }
            "weight" | "room" => return Err(bad(&format!("{} given twice", key.trim()))),
            other => {
                return Err(bad(&format!(
                    "unknown attribute \"{other}\" (weight=N or room=NAME)"
                )))
            }
        }
    }
    Ok(host)
}

/// A whole list in connect-string form; empty entries are skipped, no entry is refused
/// silently, and a list with nothing in it is an error.
pub fn parse_host_list(value: &str) -> Result<Vec<HostEntry>, String> {
    let hosts = value
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(parse_host)
        .collect::<Result<Vec<_>, _>>()?;
    if hosts.is_empty() {
        return Err("the list names no server".into());
    }
    Ok(hosts)
}

/// The order in which a replica tries its relay upstreams: those that name its own room
/// first, then the others as listed (a list naming no rooms is tried as written). Among
/// its own room's, the first try is
/// spread by weight over the replicas of the room — the `seed`-th pick (a replica's node
/// id) of a smooth weighted round-robin over them, so observers with consecutive ids take
/// the room's relays in proportion to their weights — and the rest follow in list order.
pub fn attempt_order(list: &[HostEntry], own_room: Option<&str>, seed: u64) -> Vec<HostEntry> {
    let home = |h: &HostEntry| own_room.is_some() && h.room.as_deref() == own_room;
    let (mut first, rest): (Vec<HostEntry>, Vec<HostEntry>) =
        list.iter().cloned().partition(|h| home(h));
    if first.len() > 1 {
        let total: u64 = first.iter().map(|h| u64::from(h.weight)).sum();
        let mut credit = vec![0i64; first.len()];
        let mut pick = 0;
        for _ in 0..=(seed % total) {
            for (c, h) in credit.iter_mut().zip(&first) {
                *c += i64::from(h.weight);
            }
            pick = (0..first.len())
                .max_by_key(|&i| (credit[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            credit[pick] -= total as i64;
        }
        let chosen = first.remove(pick);
        first.insert(0, chosen);
    }
    first.extend(rest);
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_with_their_weight_and_room_in_any_order() {
        let hosts = parse_host_list(
            "zk-b1.example:2181;weight=10;room=B, 10.0.0.7:2181;room=C;weight=3,[::1]:2182",
        )
        .expect("parses");
        assert_eq!(
            hosts,
            vec![
                HostEntry {
                    address: "zk-b1.example:2181".into(),
                    weight: 10,
                    room: Some("B".into())
                },
                HostEntry {
                    address: "10.0.0.7:2181".into(),
                    weight: 3,
                    room: Some("C".into())
                },
                HostEntry::plain("[::1]:2182"),
            ]
        );
        for h in &hosts {
            assert_eq!(&parse_host(&h.to_string()).expect("round trip"), h);
        }
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        let cases = [
            ("a:1;weight=0", "from 1 to"),
            ("a:1;weight=1000001", "from 1 to"),
            ("a:1;weight=x", "not a whole number"),
            ("a:1;weight=2;weight=3", "twice"),
            ("a:1;room=B;room=C", "twice"),
            ("a:1;room=B C", "not a room"),
            ("a:1;room=", "not a room"),
            ("a:1;colour=red", "unknown attribute"),
            ("a:1;weight", "not key=value"),
            ("a;weight=2", "not host:port"),
            ("a:0", "not a port"),
            ("::1:2181", "brackets"),
        ];
        for (entry, why) in cases {
            let e = parse_host(entry).expect_err(entry);
            assert!(e.contains(why), "{entry}: {e}");
        }
        assert!(parse_host_list(" , ,").is_err());
    }

    #[test]
    fn a_replica_tries_its_own_room_first_spread_by_weight() {
        let list = parse_host_list(
            "pub.a:2191;room=A,r1.b:2191;room=B;weight=2,other.c:2191;room=C,r2.b:2191;room=B",
        )
        .expect("list");
        let firsts: Vec<String> = (0..30)
            .map(|id| attempt_order(&list, Some("B"), id)[0].address.clone())
            .collect();
        let r1 = firsts.iter().filter(|a| *a == "r1.b:2191").count();
        assert_eq!((r1, 30 - r1), (20, 10), "{firsts:?}");
        for id in 0..30 {
            let order: Vec<String> = attempt_order(&list, Some("B"), id)
                .into_iter()
                .map(|h| h.address)
                .collect();
            // Both of room B first (either way round), then A and C as listed.
            assert_eq!(order.len(), 4);
            assert!(order[..2].contains(&"r1.b:2191".to_string()));
            assert!(order[..2].contains(&"r2.b:2191".to_string()));
            assert_eq!(
                order[2..],
                ["pub.a:2191".to_string(), "other.c:2191".to_string()]
            );
        }
        // With no rooms named, the list as written, whatever the replica.
        let plain = parse_host_list("x:1,y:2;weight=5,z:3").expect("list");
        for id in 0..10 {
            let order: Vec<String> = attempt_order(&plain, Some("B"), id)
                .into_iter()
                .map(|h| h.address)
                .collect();
            assert_eq!(order, ["x:1", "y:2", "z:3"]);
        }
    }
}
