//! `geokeeper certs` through the built binary: the stores it writes load as the relay's
//! TLS, a second run adds a node to the same CA, and bad input is refused with exit code 2
//! and a reason. (The binary is run directly rather than through `support::gk`, which
//! would compile every harness module for these few seconds of work.)

use std::path::Path;
use std::process::Command;

use geokeeper_relay::quic::RelayTls;

fn certs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_geokeeper"))
        .arg("certs")
        .args(args)
        .env("GEOKEEPER_LOG", "warn")
        .output()
        .expect("run geokeeper");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn loads(dir: &Path, name: &str) -> bool {
    RelayTls::from_pem_files(&dir.join(format!("{name}.pem")), &dir.join("ca.pem")).is_ok()
}

#[test]
fn certs_writes_stores_the_relay_loads_and_adds_nodes_to_its_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("certs");
    let d = dir.to_str().expect("utf-8 path");
    let (code, out, err) = certs(&[
        "--dir",
        d,
        "--node",
        "leader=1@A",
        "--node",
        "b3=3@B",
        "--host",
        "relay.example.org",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "one line per file: {out}");
    assert!(
        lines[0].contains("ca-key.pem") && lines[1].contains("ca.pem"),
        "{out}"
    );
    assert!(
        lines[2].contains("leader.pem")
            && lines[2].contains("geokeeper://relay/room/A/node/1")
            && lines[2].contains("relay.example.org"),
        "{out}"
    );
    assert!(loads(&dir, "leader") && loads(&dir, "b3"));
    let ca = std::fs::read(dir.join("ca.pem")).expect("ca.pem");

    let topology = tmp.path().join("topology.toml");
    std::fs::write(
        &topology,
        "[[node]]\nname = \"c4\"\nid = 4\nroom = \"C\"\nhosts = [\"127.0.0.1\", \"localhost\"]\n",
    )
    .expect("topology");
    let (code, out, err) = certs(&["--dir", d, "--topology", topology.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().next().is_some_and(|l| l.contains("kept")),
        "{out}"
    );
    assert!(
        out.contains("c4.pem") && !out.contains("leader.pem"),
        "{out}"
    );
    assert_eq!(std::fs::read(dir.join("ca.pem")).expect("ca.pem"), ca);
    assert!(loads(&dir, "c4"));

    for (args, why) in [
        (vec!["--dir", d], "no nodes"),
        (vec!["--dir", d, "--node", "x=1"], "NAME=ID@ROOM"),
        (
            vec!["--dir", d, "--node", "a=1@A", "--host", "a b"],
            "host \"a b\"",
        ),
        (
            vec!["--dir", d, "--node", "a=1@A", "--node", "b=1@A"],
            "given twice",
        ),
    ] {
        let (code, _, err) = certs(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}
