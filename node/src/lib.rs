//! faultline's system under test: a ZooKeeper-style replicated key-value
//! node implementing ZAB as `../shared/ZAB.md` describes it.
//!
//! * [`Node`] is the pure protocol core: `step(Input) -> Vec<Output>`, no
//!   async, no clock (time is counted in `Tick`s), no randomness, no I/O.
//! * [`shell`] runs a `Node` as a turmoil host: TCP links with heartbeats,
//!   idle timeouts and reconnects, a tick timer, and a durable log on the
//!   simulated disk with group commit.
//! * [`client`] is the client side of the protocol, for workloads and tests.

pub mod api;
pub mod client;
pub mod config;
mod core;
pub mod disk;
mod election;
pub mod evidence;
mod footprint;
pub mod ids;
mod leader;
mod learner;
mod log;
pub mod msg;
mod probe;
mod requests;
mod sessions;
pub mod shell;
pub mod sim;
pub mod store;
pub mod wire;

pub use crate::core::{Durable, Input, Node, Output, Persist, ProtocolEvent, SyncMode, TraceEvent};
pub use api::{ClientOp, ClientRequest, ClientResponse, Key, Outcome};
pub use config::{Bugs, NodeConfig};
pub use footprint::Footprint;
pub use ids::{Sid, Zxid};
pub use msg::{PeerMsg, PeerState, Vote};
pub use store::{Store, Txn, TxnOp};
