//! geokeeper's core: the ZooKeeper model and server. The jute codec and records
//! ([`proto`]), the data tree ([`tree`]), sessions ([`session`]), watches ([`watch`]),
//! ACLs ([`acl`]) and SASL ([`sasl`]), the request pipeline ([`server`]) and the TCP
//! client port ([`net`]).

pub mod acl;
pub mod datadir;
pub mod four_letter;
pub mod jaas;
pub mod lag;
pub mod learner;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod path;
pub mod prep;
pub mod proto;
pub mod publish;
pub mod ratelog;
pub mod request;
pub mod sasl;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod snapshot_stream;
pub mod storage;
pub mod tree;
pub mod txnlog;
pub mod watch;
