//! Validation that needs the whole configuration, run once after a file (and any `-D` flags)
//! has been read: the checks of `QuorumPeerConfig.parseProperties` after its loop,
//! `parseDynamicConfig`, `setupMyId`, `setupClientPort`, `setupPeerType` and `checkValidity`.

use std::net::IpAddr;

use crate::error::{ConfigError, Loc, Warning};
use crate::{resolve_ip, zoo_cfg, Config, Dialect, PeerType, MAX_EXTENDED_SERVER_ID};

/// Completes a parsed configuration. With `read_files`, also reads the `dynamicConfigFile`
/// and `<dataDir>/myid`, and requires a server id when the server is part of a quorum.
pub(crate) fn finish(
    cfg: &mut Config,
    warnings: &mut Vec<Warning>,
    read_files: bool,
) -> Result<(), ConfigError> {
    let zoo_cfg = cfg.prov.dialect == Some(Dialect::ZooCfg);

    if read_files {
        if let Some(dynamic) = cfg.dynamic_config_file.clone() {
            let bytes = std::fs::read(&dynamic).map_err(|source| ConfigError::Read {
                file: dynamic.clone(),
                source,
            })?;
            let text = crate::properties::decode(&bytes);
            zoo_cfg::apply_dynamic_file(cfg, &text, &dynamic.display().to_string(), warnings)?;
        }
        if let Some(myid) = zoo_cfg::read_myid(&cfg.data_dir)? {
            if cfg.prov.server_id_known && cfg.server_id != myid {
                return Err(cfg.loc("myid").error(format!(
                    "is {} but {} says {myid}",
                    cfg.server_id,
                    cfg.data_dir.join("myid").display()
                )));
            }
            cfg.server_id = myid;
            cfg.prov.server_id_known = true;
        }
    }

    // Without the dynamic file the ensemble is not known yet.
    let servers_known = read_files || cfg.dynamic_config_file.is_none();
    if servers_known {
        check_ensemble(cfg, warnings)?;
    }

    if servers_known && cfg.prov.server_id_known {
        setup_client_port(cfg)?;
        setup_peer_type(cfg, warnings);
    }

    if servers_known && cfg.is_distributed() {
        for (key, value) in [("initLimit", cfg.init_limit), ("syncLimit", cfg.sync_limit)] {
            // zoo.cfg has no default for these in ZooKeeper ("initLimit is not set").
            if value == 0 || (zoo_cfg && !cfg.prov.keys.contains_key(key)) {
                let loc = cfg.loc(key);
                return Err(loc.error(if value == 0 && cfg.prov.keys.contains_key(key) {
                    "must be greater than 0 in a quorum".to_string()
                } else {
                    "is not set (required when the ensemble has several voters)".to_string()
                }));
            }
        }
        if read_files && !cfg.prov.server_id_known {
            let myid = cfg.data_dir.join("myid");
            let loc = cfg.loc("myid");
            let what = if zoo_cfg {
                format!("myid file is missing: {}", myid.display())
            } else {
                format!("is not set and {} does not exist", myid.display())
            };
            return Err(loc.error(format!(
                "{what} (required when the ensemble has several voters)"
            )));
        }
        if cfg.prov.server_id_known && !cfg.servers.contains_key(&cfg.server_id) {
            let loc = cfg.loc("myid");
            return Err(loc.error(format!(
                "server id {} has no server.{} line",
                cfg.server_id, cfg.server_id
            )));
        }
    }

    // ZooKeeper opens no plain client port without clientPort (or this server's ";port").
    let port_given =
        cfg.prov.keys.contains_key("clientPort") || cfg.prov.client_port_from_server_line;
    let own_line_may_give_port = !servers_known
        || (!cfg.prov.server_id_known && cfg.servers.values().any(|s| s.client.is_some()));
    if zoo_cfg && !port_given && !own_line_may_give_port {
        warnings.push(cfg.loc("clientPort").warning(format!(
            "is not set: ZooKeeper would open no client port; geokeeper listens on {}",
            cfg.client_port
        )));
    }

    let (min, max) = (cfg.min_session_timeout(), cfg.max_session_timeout());
    if min > max {
        let key = if cfg.prov.keys.contains_key("minSessionTimeout") {
            "minSessionTimeout"
        } else {
            "maxSessionTimeout"
        };
        return Err(cfg.loc(key).error(format!(
            "minSessionTimeout must not be larger than maxSessionTimeout ({min} > {max})"
        )));
    }

    // The relay's rules involve the ensemble (a server follows it or relay upstreams, not
    // both) and the final peer type, so they wait for both.
    if servers_known {
        cfg.relay()?;
    }

    check_properties(cfg)
}

/// Checks that depend on system properties, run again after `-D` flags are applied.
pub(crate) fn check_properties(cfg: &Config) -> Result<(), ConfigError> {
    crate::inert::refuse(cfg)?;
    if cfg.enforced_auth_schemes().is_some_and(|s| s.is_empty()) {
        // AuthenticationHelper.validateConfiguredProperties (its message, two spaces and all).
        let loc = cfg
            .prov
            .props
            .get(crate::sysprops::ENFORCE_AUTH_ENABLED)
            .map_or_else(|| cfg.loc("enforce.auth.enabled"), |p| p.loc.clone());
        return Err(loc.error(
            "zookeeper.enforce.auth.enabled is true zookeeper.enforce.auth.schemes must be  configured.",
        ));
    }
    if !cfg.multi_address_enabled {
        if let Some(spec) = cfg.servers.values().find(|s| s.addresses.len() > 1) {
            return Err(server_loc(cfg, spec.id).error(format!(
                "Multiple address feature is disabled, but multiple addresses were specified for sid {} \
                 (set multiAddress.enabled=true)",
                spec.id
            )));
        }
    }
    // EphemeralType.validateServerId: the id is packed into TTL node owners.
    if cfg.extended_types_enabled && cfg.server_id > MAX_EXTENDED_SERVER_ID {
        let loc = cfg
            .prov
            .props
            .get(crate::sysprops::EXTENDED_TYPES)
            .map_or_else(|| cfg.loc("extendedTypesEnabled"), |p| p.loc.clone());
        return Err(loc.error(format!(
            "extendedTypesEnabled is true but Server ID {} is too large. Cannot be larger than {MAX_EXTENDED_SERVER_ID}",
            cfg.server_id
        )));
    }
    Ok(())
}

fn server_loc(cfg: &Config, id: u64) -> Loc {
    cfg.prov
        .servers
        .get(&id)
        .cloned()
        .unwrap_or_else(|| Loc::new(&cfg.prov.file, None, &format!("server.{id}")))
}

/// `parseDynamicConfig`: the ensemble must make sense before anything else is checked.
fn check_ensemble(cfg: &Config, warnings: &mut Vec<Warning>) -> Result<(), ConfigError> {
    let voters: Vec<u64> = cfg.voters().map(|s| s.id).collect();
    let first_observer = cfg.observers().map(|s| s.id).next();
    match voters.len() {
        0 => {
            if !cfg.standalone_enabled {
                return Err(cfg
                    .loc("standaloneEnabled")
                    .error("standaloneEnabled = false then number of participants should be >0"));
            }
            if let Some(id) = first_observer {
                return Err(server_loc(cfg, id)
                    .error("Observers w/o participants is an invalid configuration"));
            }
        }
        1 if cfg.standalone_enabled => {
            if let Some(id) = first_observer {
                return Err(
                    server_loc(cfg, id).error("Observers w/o quorum is an invalid configuration")
                );
            }
            // HBase writes a single server line; ZooKeeper logs an error and runs standalone.
            warnings.push(server_loc(cfg, voters[0]).warning(
                "Invalid configuration, only one server specified (ignoring): running standalone",
            ));
        }
        n => {
            let loc = server_loc(cfg, voters[0]);
            if n <= 2 {
                warnings.push(
                    loc.warning(
                        "No server failure will be tolerated. You need at least 3 servers.",
                    ),
                );
            } else if n % 2 == 0 {
                warnings.push(
                    loc.warning("Non-optimal configuration, consider an odd number of servers."),
                );
            }
        }
    }
    Ok(())
}

/// `setupClientPort`: this server's `;clientPort` part wins over `clientPort`, which must
/// agree with it when both are given.
fn setup_client_port(cfg: &mut Config) -> Result<(), ConfigError> {
    let Some(client) = cfg
        .servers
        .get(&cfg.server_id)
        .and_then(|s| s.client.clone())
    else {
        return Ok(());
    };
    let line = server_loc(cfg, cfg.server_id);
    let address =
        resolve_ip(&client.host).map_err(|e| line.error(format!("client address {e}")))?;
    let static_port_given = cfg.prov.keys.contains_key("clientPort");
    if static_port_given {
        let static_ip = cfg.client_port_address;
        let conflict = cfg.client_port != client.port
            || static_ip.is_some_and(|ip| !ip.is_unspecified() && ip != address);
        if conflict {
            return Err(cfg.loc("clientPort").error(format!(
                "client address for this server (id = {}) is {} but {} ({}) says {}:{}",
                cfg.server_id,
                cfg.client_socket_addr(),
                line.key,
                line.place(),
                client.host,
                client.port
            )));
        }
    }
    cfg.client_port = client.port;
    cfg.client_port_address = Some(address).filter(|ip: &IpAddr| !ip.is_unspecified());
    cfg.prov.client_port_from_server_line = true;
    Ok(())
}

/// `setupPeerType`: the role in the servers list wins over `peerType`. A QUIC observer has no
/// servers list (it follows relay upstreams), so there its `peerType` stands.
fn setup_peer_type(cfg: &mut Config, warnings: &mut Vec<Warning>) {
    if cfg.servers.is_empty() && cfg.is_relay_observer() {
        return;
    }
    let by_list = match cfg.servers.get(&cfg.server_id) {
        Some(s) if s.role == PeerType::Observer => PeerType::Observer,
        _ => PeerType::Participant,
    };
    if by_list != cfg.peer_type {
        warnings.push(cfg.loc("peerType").warning(format!(
            "Peer type from servers list ({by_list}) doesn't match peerType ({}). Defaulting to servers list.",
            cfg.peer_type
        )));
        cfg.peer_type = by_list;
    }
}
