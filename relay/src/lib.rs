//! Committed-transaction streams, the bytes between replicas: today ZooKeeper's learner
//! protocol over TCP, with which a geokeeper gateway follows an Apache ZooKeeper ensemble
//! as an observer ([`learner_link`]); next, geokeeper's own stream over QUIC. The protocol
//! logic is `geokeeper_core::learner`'s state machine; this crate connects, reads and
//! writes.

pub mod certs;
pub mod gateway;
pub mod learner_link;
pub mod publisher;
pub mod quic;
pub mod quic_observer;
pub mod tls;
pub mod wire;
