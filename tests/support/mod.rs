//! Shared helpers for end-to-end tests: real geokeeper and Apache ZooKeeper processes and
//! the reference clients (zkCli, cli_mt, kazoo), and network trouble between them
//! (tcp_cut, wan).
#![allow(dead_code)]

pub mod certs;
pub mod example_script;
pub mod gateway;
pub mod gk;
pub mod history;
pub mod java_ensemble;
pub mod java_zk;
pub mod proxy;
pub mod rawzk;
pub mod relay;
pub mod tcp_cut;
pub mod wan;
pub mod zkc;
