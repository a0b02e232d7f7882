//! What the relay crate's QUIC tests share: a publisher endpoint that admits the
//! identities it is given and echoes one stream, and a subscriber that connects and
//! echoes.
#![allow(dead_code)]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use geokeeper_relay::quic::{admit, Identity, RelayTls};

pub fn id(room: &str, node: u64) -> Identity {
    Identity {
        room: room.into(),
        node,
    }
}

pub struct Publisher {
    pub addr: SocketAddr,
    /// What the accept loop concluded for each peer, in order.
    pub results: tokio::sync::mpsc::UnboundedReceiver<Result<Identity, String>>,
    _endpoint: quinn::Endpoint,
}

pub fn publisher(tls: &RelayTls, allowed: &[Identity]) -> Publisher {
    let allowed: HashSet<Identity> = allowed.iter().cloned().collect();
    let ep = quinn::Endpoint::server(
        tls.server_config(64 << 20).expect("server config"),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .expect("endpoint");
    let addr = ep.local_addr().expect("addr");
    let (tx, results) = tokio::sync::mpsc::unbounded_channel();
    let accept = ep.clone();
    tokio::spawn(async move {
        while let Some(incoming) = accept.accept().await {
            let r = match admit(incoming, &allowed).await {
                Ok((conn, who)) => {
                    // Prove the connection carries data: echo one stream.
                    if let Ok((mut send, mut recv)) = conn.accept_bi().await {
                        if let Ok(b) = recv.read_to_end(1024).await {
                            let _ = send.write_all(&b).await;
                            let _ = send.finish();
                            let _ = send.stopped().await;
                        }
                    }
                    Ok(who)
                }
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(r);
        }
    });
    Publisher {
        addr,
        results,
        _endpoint: ep,
    }
}

/// Connects to `addr` as `server_name` with `config` and echoes a message; Err: why it
/// failed (after the handshake, the publisher's close reason says why).
pub async fn subscribe(
    addr: SocketAddr,
    server_name: &str,
    config: quinn::ClientConfig,
) -> Result<Vec<u8>, String> {
    let mut ep = quinn::Endpoint::client(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| e.to_string())?;
    ep.set_default_client_config(config);
    let conn = ep
        .connect(addr, server_name)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let echoed = async {
        let (mut send, mut recv) = conn.open_bi().await.ok()?;
        send.write_all(b"hello").await.ok()?;
        send.finish().ok()?;
        recv.read_to_end(1024).await.ok()
    }
    .await;
    echoed.ok_or_else(|| match conn.close_reason() {
        Some(e) => e.to_string(),
        None => "the stream failed".into(),
    })
}
