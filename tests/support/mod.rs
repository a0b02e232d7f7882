//! Shared helpers for end-to-end tests: real geokeeper and Apache ZooKeeper processes and
//! the reference clients (zkCli, cli_mt, kazoo).
#![allow(dead_code)]

pub mod certs;
pub mod gateway;
pub mod gk;
pub mod java_ensemble;
pub mod java_zk;
pub mod rawzk;
pub mod tcp_cut;
pub mod zkc;
