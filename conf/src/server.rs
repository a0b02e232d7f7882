//! Ensemble members: the `server.N=` lines of zoo.cfg (or of its `dynamicConfigFile`) and the
//! `[[quorum.servers]]` tables of geokeeper.toml.
//!
//! The zoo.cfg form is the one `QuorumPeer.QuorumServer` parses (ZooKeeper 3.6+):
//!
//! ```text
//! server.N = host:quorumPort:electionPort[:participant|:observer]
//!            [|host:quorumPort:electionPort[:role] ...]      (multiAddress.enabled only)
//!            [;[clientHost:]clientPort]
//! ```
//!
//! Hosts may be IPv6 literals in brackets (`[2001:db8::1]:2888:3888`). Host names are kept as
//! written and not resolved here: ZooKeeper also accepts an unresolvable name and retries the
//! lookup when it connects.

use std::fmt;

use crate::properties::java_trim;

/// The role a server plays in the ensemble (`peerType`, or the suffix of a `server.N` line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PeerType {
    /// Votes in elections and on proposals.
    #[default]
    Participant,
    /// Receives committed transactions but does not vote.
    Observer,
}

impl PeerType {
    /// Parses `participant` / `observer`, ignoring case and surrounding blanks, as ZooKeeper does.
    pub fn parse(s: &str) -> Option<PeerType> {
        match java_trim(s).to_ascii_lowercase().as_str() {
            "participant" => Some(PeerType::Participant),
            "observer" => Some(PeerType::Observer),
            _ => None,
        }
    }

    /// The lower-case name ZooKeeper writes (`participant`, `observer`).
    pub fn as_str(self) -> &'static str {
        match self {
            PeerType::Participant => "participant",
            PeerType::Observer => "observer",
        }
    }
}

impl fmt::Display for PeerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One quorum address of a server: where followers reach the leader and where elections run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumAddress {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// The port learners connect to the leader on (the first port, conventionally 2888).
    pub quorum_port: u16,
    /// The leader-election port (the second port, conventionally 3888).
    pub election_port: u16,
}

/// The client address given after `;` in a `server.N` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientAddress {
    /// Host name or IP literal; `0.0.0.0` when the line gives only a port, as in ZooKeeper.
    pub host: String,
    /// Client port.
    pub port: u16,
}

/// One member of the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The server id (`N` of `server.N`, the content of that server's `myid` file).
    pub id: u64,
    /// Quorum addresses: one, or several separated by `|` when `multiAddress.enabled` is set.
    pub addresses: Vec<QuorumAddress>,
    /// Participant (votes) or observer.
    pub role: PeerType,
    /// Client address from the `;[host:]port` part, when present.
    pub client: Option<ClientAddress>,
}

impl ServerSpec {
    /// The first (primary) quorum address. Every parsed `ServerSpec` has at least one.
    pub fn primary(&self) -> Option<&QuorumAddress> {
        self.addresses.first()
    }

    /// Parses the value of a `server.N` line exactly as `QuorumServer` does, except that the
    /// whole value is trimmed first (ZooKeeper rejects trailing blanks after the last port with
    /// a confusing "Address unresolved") and that an empty host and a `[v6]` not followed by
    /// `:` are refused instead of being misread.
    pub fn parse(id: u64, value: &str) -> Result<ServerSpec, String> {
        let value = java_trim(value);
        let wrong_format = || {
            format!(
                "\"{value}\" does not have the form host:port:port[:participant|:observer] \
                 (several separated by '|') optionally followed by ;[host:]clientPort"
            )
        };
        let server_client = java_split(value, ';');
        if server_client.is_empty() || server_client.len() > 2 {
            return Err(wrong_format());
        }
        let client = match server_client.get(1) {
            Some(client_part) => {
                let parts = host_and_port(client_part)?;
                if parts.len() > 2 {
                    return Err(wrong_format());
                }
                let (host, port) = match parts.as_slice() {
                    [port] => ("0.0.0.0".to_string(), port),
                    [host, port] => (non_empty_host(host, value)?, port),
                    _ => return Err(wrong_format()),
                };
                Some(ClientAddress {
                    host,
                    port: parse_port(port, "client port")?,
                })
            }
            None => None,
        };

        let mut addresses = Vec::new();
        let mut role: Option<PeerType> = None;
        for address in java_split(server_client[0], '|') {
            let parts = host_and_port(address)?;
            if parts.len() < 3 || parts.len() > 4 {
                return Err(wrong_format());
            }
            let host = non_empty_host(&parts[0], value)?;
            let quorum_port = parse_port(&parts[1], "quorum port")?;
            let election_port = parse_port(&parts[2], "election port")?;
            if quorum_port == election_port {
                // ZooKeeper: "Client and election port must be different!" (it compares the
                // quorum and election ports, whatever the message says).
                return Err(format!(
                    "quorum port and election port must be different (both are {quorum_port})"
                ));
            }
            if let Some(type_part) = parts.get(3) {
                let this = PeerType::parse(type_part)
                    .ok_or_else(|| format!("Unrecognised peertype: {type_part}"))?;
                match role {
                    Some(previous) if previous != this => {
                        return Err(format!(
                            "Multiple addresses should have similar roles: {previous} vs {this}"
                        ))
                    }
                    _ => role = Some(this),
                }
            }
            addresses.push(QuorumAddress {
                host,
                quorum_port,
                election_port,
            });
        }
        if addresses.is_empty() {
            return Err(wrong_format());
        }
        Ok(ServerSpec {
            id,
            addresses,
            role: role.unwrap_or_default(),
            client,
        })
    }
}

/// Writes the line value back in ZooKeeper's form (as `QuorumServer.toString` does, but keeping
/// the addresses in the order they were written).
impl fmt::Display for ServerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.addresses.iter().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(
                f,
                "{}:{}:{}",
                bracketed(&a.host),
                a.quorum_port,
                a.election_port
            )?;
        }
        write!(f, ":{}", self.role)?;
        if let Some(client) = &self.client {
            write!(f, ";{}:{}", bracketed(&client.host), client.port)?;
        }
        Ok(())
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn non_empty_host(host: &str, value: &str) -> Result<String, String> {
    if host.is_empty() {
        Err(format!("empty host name in \"{value}\""))
    } else {
        Ok(host.to_string())
    }
}

/// `Integer.parseInt` of a port, then the range a socket address accepts. Port 0 is refused:
/// it would mean "any port", which no peer could be told about.
pub(crate) fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    let n = crate::sysprops::java_parse_int(s)
        .ok_or_else(|| format!("{what} \"{s}\" is not a number"))?;
    u16::try_from(n)
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("{what} {n} is out of range (1-65535)"))
}

/// `String.split(regex)` for a one-character separator: trailing empty strings are removed,
/// and a string without the separator is returned whole.
pub(crate) fn java_split(s: &str, sep: char) -> Vec<&str> {
    if !s.contains(sep) {
        return vec![s];
    }
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

/// `ConfigUtils.getHostAndPort`: splits `host:port[:...]`, where the host may be a bracketed
/// IPv6 literal. Returns the host first, then the remaining `:`-separated parts.
pub(crate) fn host_and_port(s: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("{s} starts with '[' but has no matching ']:'"))?;
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Ok(vec![host.to_string()]);
        }
        let Some(ports) = after.strip_prefix(':') else {
            return Err(format!("{s}: expected ':' after ']'"));
        };
        if ports.is_empty() {
            return Err(format!("{s} doesn't have a port after colon"));
        }
        let mut parts = vec![host.to_string()];
        parts.extend(java_split(ports, ':').into_iter().map(str::to_string));
        Ok(parts)
    } else {
        Ok(java_split(s, ':').into_iter().map(str::to_string).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(host: &str, q: u16, e: u16) -> QuorumAddress {
        QuorumAddress {
            host: host.to_string(),
            quorum_port: q,
            election_port: e,
        }
    }

    #[test]
    fn plain_participant() {
        let s = ServerSpec::parse(1, "zoo1:2888:3888").expect("valid");
        assert_eq!(s.id, 1);
        assert_eq!(s.addresses, vec![addr("zoo1", 2888, 3888)]);
        assert_eq!(s.role, PeerType::Participant);
        assert_eq!(s.client, None);
        assert_eq!(s.to_string(), "zoo1:2888:3888:participant");
    }

    #[test]
    fn observer_in_any_case() {
        let s = ServerSpec::parse(4, "zoo4:2888:3888:OBSERVER").expect("valid");
        assert_eq!(s.role, PeerType::Observer);
        assert_eq!(
            ServerSpec::parse(4, "zoo4:2888:3888:participant")
                .expect("valid")
                .role,
            PeerType::Participant
        );
    }

    #[test]
    fn client_port_part() {
        let s = ServerSpec::parse(1, "zoo1:2888:3888;2181").expect("valid");
        assert_eq!(
            s.client,
            Some(ClientAddress {
                host: "0.0.0.0".into(),
                port: 2181
            })
        );
        let s = ServerSpec::parse(1, "zoo1:2888:3888:observer;10.0.0.1:2182").expect("valid");
        assert_eq!(s.role, PeerType::Observer);
        assert_eq!(
            s.client,
            Some(ClientAddress {
                host: "10.0.0.1".into(),
                port: 2182
            })
        );
        assert_eq!(s.to_string(), "zoo1:2888:3888:observer;10.0.0.1:2182");
    }

    #[test]
    fn ipv6_in_brackets() {
        let s =
            ServerSpec::parse(2, "[2001:db8::2]:2888:3888:participant;[::1]:2181").expect("valid");
        assert_eq!(s.addresses, vec![addr("2001:db8::2", 2888, 3888)]);
        assert_eq!(
            s.client,
            Some(ClientAddress {
                host: "::1".into(),
                port: 2181
            })
        );
        assert_eq!(
            s.to_string(),
            "[2001:db8::2]:2888:3888:participant;[::1]:2181"
        );
    }

    #[test]
    fn multiple_addresses() {
        let s =
            ServerSpec::parse(1, "zoo1-net1:2888:3888|zoo1-net2:2889:3889;2181").expect("valid");
        assert_eq!(
            s.addresses,
            vec![addr("zoo1-net1", 2888, 3888), addr("zoo1-net2", 2889, 3889)]
        );
        // A role on one address applies to the server; two different roles do not mix.
        let s = ServerSpec::parse(1, "a:1:2|b:3:4:observer").expect("valid");
        assert_eq!(s.role, PeerType::Observer);
        assert_eq!(
            ServerSpec::parse(1, "a:1:2:participant|b:3:4:observer"),
            Err("Multiple addresses should have similar roles: participant vs observer".into())
        );
    }

    #[test]
    fn trailing_separators_are_dropped_like_java_split() {
        let s = ServerSpec::parse(1, "zoo1:2888:3888:").expect("valid");
        assert_eq!(s.addresses, vec![addr("zoo1", 2888, 3888)]);
        let s = ServerSpec::parse(1, "zoo1:2888:3888;").expect("valid");
        assert_eq!(s.client, None);
    }

    #[test]
    fn bad_lines() {
        let wrong = |v: &str| {
            format!(
                "\"{v}\" does not have the form host:port:port[:participant|:observer] \
                 (several separated by '|') optionally followed by ;[host:]clientPort"
            )
        };
        assert_eq!(ServerSpec::parse(1, "zoo1:2888"), Err(wrong("zoo1:2888")));
        assert_eq!(ServerSpec::parse(1, "zoo1"), Err(wrong("zoo1")));
        assert_eq!(
            ServerSpec::parse(1, "zoo1:1:2:observer:x"),
            Err(wrong("zoo1:1:2:observer:x"))
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:1:2;3;4"),
            Err(wrong("zoo1:1:2;3;4"))
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:1:2;h:3:4"),
            Err(wrong("zoo1:1:2;h:3:4"))
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:2888:3888:leader"),
            Err("Unrecognised peertype: leader".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:x:3888"),
            Err("quorum port \"x\" is not a number".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:2888:70000"),
            Err("election port 70000 is out of range (1-65535)".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:2888:3888;0"),
            Err("client port 0 is out of range (1-65535)".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "zoo1:2888:2888"),
            Err("quorum port and election port must be different (both are 2888)".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "[::1:2888:3888"),
            Err("[::1:2888:3888 starts with '[' but has no matching ']:'".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "[::1]:"),
            Err("[::1]: doesn't have a port after colon".into())
        );
        assert_eq!(
            ServerSpec::parse(1, "[::1]x2888:3888"),
            Err("[::1]x2888:3888: expected ':' after ']'".into())
        );
        assert_eq!(
            ServerSpec::parse(1, ":2888:3888"),
            Err("empty host name in \":2888:3888\"".into())
        );
        // An unbracketed IPv6 literal splits into too many parts, as in ZooKeeper.
        assert_eq!(
            ServerSpec::parse(1, "2001:db8::2:2888:3888"),
            Err(wrong("2001:db8::2:2888:3888"))
        );
    }
}
