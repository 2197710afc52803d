//! faultline's checker: pure functions from a [`History`] to a verdict.
//!
//! Linearizability is decided per partition (key): a register whose values
//! are unique is first tried in O(n log n) by its zones ([`zones`]), whose
//! candidate order is verified before it counts; otherwise, or when that
//! finds no order, by a Wing–Gong–Lowe search
//! with a cache of (linearized set, state) ([`wgl`]), under Jepsen's
//! semantics: `fail` did not happen; `info` may have happened at any time
//! after its invocation, or never. A [`Budget`] turns an unfinished search
//! into `unknown`, never into a wrong answer. An invalid verdict comes with a
//! [`Witness`]: the op that cannot be placed, the longest linearizable prefix
//! found, and the ops concurrent with it.
//!
//! The checker never sees turmoil; it depends on `faultline-history` only.
//!
//! ```
//! use faultline_checker::{check, Budget, ModelKind, Validity};
//! use faultline_history::{read_str, ReadOptions};
//! let src = "{:type :invoke, :f :write, :value 1, :process 0}\n\
//!            {:type :ok, :f :write, :value 1, :process 0}\n\
//!            {:type :invoke, :f :read, :value nil, :process 1}\n\
//!            {:type :ok, :f :read, :value 2, :process 1}\n";
//! let (h, _) = read_str(src, ReadOptions::default()).unwrap();
//! let report = check(&h, ModelKind::Register, &Budget::default(), 1).unwrap();
//! assert_eq!(report.result, Validity::Invalid);
//! ```
//!
//! [`History`]: faultline_history::History

mod acks;
pub mod discovery;
pub mod durable;
pub mod health;
pub mod linearizability;
pub mod model;
pub mod rlog;
pub mod sessions;
pub mod synth;
pub mod verdict;
pub mod wgl;
pub mod zk;
pub mod zones;

pub use linearizability::{check, check_from, check_model, ModelError, RegisterOptions};
pub use model::{Kv, KvOp, Model, ModelKind, Register, RegisterOp};
pub use verdict::{Candidate, CheckOutcome, LinReport, OpRef, Step, UnknownKey, Validity, Witness};
pub use wgl::Budget;
