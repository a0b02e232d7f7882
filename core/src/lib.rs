//! geokeeper's core: the ZooKeeper model and server. The jute codec and records
//! ([`proto`]), the data tree ([`tree`]), sessions ([`session`]), watches ([`watch`]),
//! ACLs ([`acl`]), the request pipeline ([`server`]) and the TCP client port ([`net`]).

pub mod acl;
pub mod net;
pub mod path;
pub mod prep;
pub mod proto;
pub mod request;
pub mod server;
pub mod session;
pub mod storage;
pub mod tree;
pub mod txnlog;
pub mod watch;
