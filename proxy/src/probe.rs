//! Health of the upstreams: each is asked `srvr` every probe interval (the one
//! four-letter word ZooKeeper 3.8 allows by default), which says whether it serves, its
//! mode (`leader`, `follower`, `observer`, `standalone`, `read-only`) and its last zxid.
//! The leader is whoever says `Mode: leader` (or `standalone`): learned from the
//! upstreams, never configured, so an election moves nothing by hand.
//!
//! An upstream's lag is measured against the newest zxid any upstream reported (the
//! leader's, when it is among them and serves): each time that reference moves, the new
//! position is marked with the local time ([`geokeeper_core::lag::Behind`]), and the lag
//! is how long the upstream has not reached a marked position. Only local clocks are
//! compared; with no writes the reference does not move and nobody lags.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What one `srvr` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Srvr {
    /// It serves clients: its mode and last zxid.
    Serving { mode: String, zxid: i64 },
    /// "This ZooKeeper instance is not currently serving requests" (a leader with
    /// `leaderServes=no`, a server out of its quorum, an observer not in sync).
    NotServing,
}

/// Why a probe failed: the upstream is unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(String),
    #[error("an answer that is not srvr's: {0}")]
    Garbage(String),
}

/// The longest `srvr` answer read; more is garbage.
const MAX_ANSWER: usize = 16 * 1024;

/// Asks `addr` for `srvr`, within `timeout` in all.
pub async fn srvr(addr: &str, timeout: Duration) -> Result<Srvr, ProbeError> {
    let ask = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| ProbeError::Connect(e.to_string()))?;
        s.write_all(b"srvr")
            .await
            .map_err(|e| ProbeError::Io(e.to_string()))?;
        let mut answer = Vec::new();
        (&mut s)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| ProbeError::Io(e.to_string()))?;
        parse_srvr(&answer)
    };
    tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
}

/// Reads a `srvr` answer; anything else is [`ProbeError::Garbage`].
pub fn parse_srvr(answer: &[u8]) -> Result<Srvr, ProbeError> {
    let garbage = |why: &str| ProbeError::Garbage(why.to_string());
    if answer.len() > MAX_ANSWER {
        return Err(garbage("longer than 16 KiB"));
    }
    let text = std::str::from_utf8(answer).map_err(|_| garbage("not UTF-8"))?;
    if text.trim_end() == "This ZooKeeper instance is not currently serving requests" {
        return Ok(Srvr::NotServing);
    }
    if !text.starts_with("Zookeeper version: ") {
        let head: String = text.chars().take(60).collect();
        return Err(ProbeError::Garbage(format!("{head:?}")));
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
    };
    let zxid = field("Zxid:")
        .and_then(|z| i64::from_str_radix(z.trim_start_matches("0x"), 16).ok())
        .ok_or_else(|| garbage("no Zxid line"))?;
    let mode = field("Mode:").ok_or_else(|| garbage("no Mode line"))?;
    if mode.is_empty() || mode.len() > 32 {
        return Err(garbage("a Mode that is no mode"));
    }
    Ok(Srvr::Serving {
        mode: mode.to_string(),
        zxid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srvr_answers_are_read_and_garbage_is_refused() {
        let java = b"Zookeeper version: 3.8.0-5a02a05eddb59aee6ac762f7ea82e92a68eb9c0f, built on 2022-02-25 08:49 UTC\nLatency min/avg/max: 0/0.0/0\nReceived: 1\nSent: 0\nConnections: 1\nOutstanding: 0\nZxid: 0x100000003\nMode: follower\nNode count: 5\n";
        assert_eq!(
            parse_srvr(java),
            Ok(Srvr::Serving {
                mode: "follower".into(),
                zxid: 0x1_0000_0003
            })
        );
        assert_eq!(
            parse_srvr(b"This ZooKeeper instance is not currently serving requests\n"),
            Ok(Srvr::NotServing)
        );
        for bad in [
            &b"imok"[..],
            b"Zookeeper version: x\nMode: leader\n",
            b"Zookeeper version: x\nZxid: 0xzz\nMode: leader\n",
            b"Zookeeper version: x\nZxid: 0x1\n",
            b"\xff\xfe",
            b"",
        ] {
            assert!(
                matches!(parse_srvr(bad), Err(ProbeError::Garbage(_))),
                "{bad:?}"
            );
        }
        assert!(parse_srvr(&vec![b'a'; MAX_ANSWER + 1]).is_err());
    }
}
