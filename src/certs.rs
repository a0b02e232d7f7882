//! `geokeeper certs`: a development CA and relay node certificates for a named topology,
//! so that examples and tests need no outside tools (production deployments point the
//! relay at their own PEM files). The work is `geokeeper_relay::certs`; this is the
//! command line around it.

use std::path::PathBuf;
use std::process::ExitCode;

use geokeeper_relay::certs::{
    issue, CertError, NodeSpec, Options, Topology, DEFAULT_CA_DAYS, DEFAULT_NODE_DAYS,
};
use tracing::error;

#[derive(clap::Args)]
pub struct CertsArgs {
    /// Where the files go (created if missing). A CA already there (ca.pem and ca-key.pem)
    /// is reused, so a later run adds nodes the earlier ones trust.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// A relay node: its key store's name (NAME.pem), node id and room, e.g. leader=1@A.
    /// Repeat for more nodes.
    #[arg(long = "node", value_name = "NAME=ID@ROOM", value_parser = parse_node)]
    nodes: Vec<NodeSpec>,
    /// A TOML file of [[node]] tables (name, id, room, optional hosts).
    #[arg(long, value_name = "FILE")]
    topology: Option<PathBuf>,
    /// Another DNS name or IP address for every node's certificate, beside localhost,
    /// 127.0.0.1 and ::1 (or a topology node's own hosts). Repeat for more.
    #[arg(long = "host", value_name = "NAME_OR_IP")]
    hosts: Vec<String>,
    /// Validity of the node certificates, in days.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NODE_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Validity of a new CA, in days (a reused CA keeps its own).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CA_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    ca_days: u32,
}

fn parse_node(s: &str) -> Result<NodeSpec, String> {
    s.parse().map_err(|e: CertError| e.to_string())
}

/// Issues the certificates and prints one line per file written.
pub fn main(args: CertsArgs) -> ExitCode {
    let mut nodes = match &args.topology {
        Some(path) => match Topology::load(path) {
            Ok(t) => t.nodes,
            Err(e) => {
                error!("{e}");
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    nodes.extend(args.nodes);
    if nodes.is_empty() {
        error!("no nodes: give --node NAME=ID@ROOM (repeatable) or --topology FILE");
        return ExitCode::from(2);
    }
    for n in &mut nodes {
        n.add_hosts(&args.hosts);
    }
    let opts = Options {
        ca_days: args.ca_days,
        node_days: args.days,
    };
    match issue(&args.dir, &nodes, &opts) {
        Ok(summary) => {
            if summary.ca_reused {
                println!(
                    "{}: kept, the CA \"{}\" signed the certificates below",
                    summary.trust_store.display(),
                    summary.ca_name
                );
            }
            for w in &summary.written {
                println!("{w}");
            }
            ExitCode::SUCCESS
        }
        // Input the command cannot use: the usage exit code, as for a bad configuration.
        Err(e @ (CertError::Invalid(_) | CertError::Topology { .. } | CertError::Ca { .. })) => {
            error!("{e}");
            ExitCode::from(2)
        }
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}
