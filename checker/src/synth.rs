//! Synthetic histories from a true concurrent register, for tests and
//! benchmarks.
//!
//! Client processes invoke reads, writes and (optionally) compare-and-sets
//! on a set of registers; each op takes effect atomically at a random moment
//! between its invocation and completion, against a real in-memory register,
//! so every history this module makes is linearizable by construction. Ops
//! can also fail (completed as `fail` without taking effect) or time out
//! (completed as `info`: the op took effect before, takes effect later, or
//! never does), and a process that got `info` is retired, as in Jepsen.
//! Everything is drawn from the seed.

use faultline_history::{Fun, History, Op, OpType, Process, Value};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Seed for every random choice.
    pub seed: u64,
    /// Concurrent client processes.
    pub processes: usize,
    /// Number of registers; 0 means one register with no key.
    pub keys: usize,
    /// Number of invocations.
    pub ops: usize,
    /// Whether to issue compare-and-sets.
    pub cas: bool,
    /// Values written are drawn from `0..values`.
    pub values: i64,
    /// Chance that an op not yet applied completes as `fail`.
    pub fail_probability: f64,
    /// Chance that an op completes as `info`.
    pub info_probability: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            processes: 5,
            keys: 0,
            ops: 100,
            cas: true,
            values: 5,
            fail_probability: 0.05,
            info_probability: 0.05,
        }
    }
}

#[derive(Clone, Debug)]
struct Pending {
    key: usize,
    f: Fun,
    arg: Value,
    /// The result once applied: the value read, or whether a cas matched.
    applied: Option<Applied>,
}

#[derive(Clone, Debug)]
enum Applied {
    Read(Value),
    Done,
    CasMismatch,
}

struct Gen {
    rng: ChaCha8Rng,
    cfg: SynthConfig,
    regs: Vec<Value>,
    ops: Vec<Op>,
    time: u64,
}

impl Gen {
    fn key_value(&self, key: usize) -> Option<Value> {
        (self.cfg.keys > 0).then_some(Value::Int(key as i64))
    }

    fn emit(&mut self, kind: OpType, pid: u64, p: &Pending, value: Value) {
        self.time += self.rng.random_range(1..1000);
        let mut op = Op::new(kind, Process::Client(pid), p.f.clone(), value);
        op.key = self.key_value(p.key);
        op.time = self.time;
        self.ops.push(op);
    }

    fn apply(&mut self, p: &mut Pending) {
        assert!(p.applied.is_none(), "an op takes effect at most once");
        let reg = &mut self.regs[p.key];
        p.applied = Some(match &p.f {
            Fun::Read => Applied::Read(reg.clone()),
            Fun::Write => {
                *reg = p.arg.clone();
                Applied::Done
            }
            Fun::Cas => {
                let (from, to) = p.arg.as_pair().expect("cas args are pairs");
                if from == reg {
                    *reg = to.clone();
                    Applied::Done
                } else {
                    Applied::CasMismatch
                }
            }
            other => unreachable!("synth issues no {other}"),
        });
    }

    fn invoke(&mut self, pid: u64) -> Pending {
        let key = if self.cfg.keys > 0 {
            self.rng.random_range(0..self.cfg.keys)
        } else {
            0
        };
        let roll: f64 = self.rng.random();
        let v = self.rng.random_range(0..self.cfg.values);
        let (f, arg) = if roll < 0.5 {
            (Fun::Read, Value::Nil)
        } else if roll < 0.75 || !self.cfg.cas {
            (Fun::Write, Value::Int(v))
        } else {
            // Compare with the current value half of the time, so that cas
            // succeeds often enough to matter.
            let from = if self.rng.random_bool(0.5) {
                self.regs[key].clone()
            } else {
                Value::Int(self.rng.random_range(0..self.cfg.values))
            };
            (Fun::Cas, Value::pair(from, Value::Int(v)))
        };
        let p = Pending {
            key,
            f,
            arg,
            applied: None,
        };
        let arg = p.arg.clone();
        self.emit(OpType::Invoke, pid, &p, arg);
        p
    }

    /// Completes a pending op: ok/fail from what happened, or info.
    fn complete(&mut self, pid: u64, mut p: Pending) -> bool {
        if p.applied.is_none() && self.rng.random_bool(self.cfg.fail_probability) {
            let arg = p.arg.clone();
            self.emit(OpType::Fail, pid, &p, arg);
            return false;
        }
        if self.rng.random_bool(self.cfg.info_probability) {
            let arg = p.arg.clone();
            self.emit(OpType::Info, pid, &p, arg);
            return true;
        }
        if p.applied.is_none() {
            self.apply(&mut p);
        }
        match p.applied.clone().expect("applied above") {
            Applied::Read(v) => self.emit(OpType::Ok, pid, &p, v),
            Applied::Done => {
                let arg = p.arg.clone();
                self.emit(OpType::Ok, pid, &p, arg)
            }
            Applied::CasMismatch => {
                let arg = p.arg.clone();
                self.emit(OpType::Fail, pid, &p, arg)
            }
        }
        false
    }
}

/// Generates a linearizable history as described in the module docs.
pub fn register_history(cfg: &SynthConfig) -> History {
    assert!(
        cfg.processes > 0 && cfg.values > 0,
        "need processes and values"
    );
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(cfg.seed),
        cfg: cfg.clone(),
        regs: vec![Value::Nil; cfg.keys.max(1)],
        ops: Vec::with_capacity(cfg.ops * 2),
        time: 0,
    };
    let mut slots: Vec<(u64, Option<Pending>)> =
        (0..cfg.processes as u64).map(|p| (p, None)).collect();
    let mut next_pid = cfg.processes as u64;
    // Ops that timed out before taking effect: they may still do so.
    let mut zombies: Vec<Pending> = Vec::new();
    let mut invoked = 0;
    loop {
        let busy = slots.iter().any(|s| s.1.is_some());
        if invoked == cfg.ops && !busy {
            break;
        }
        if !zombies.is_empty() && g.rng.random_bool(0.05) {
            let z = g.rng.random_range(0..zombies.len());
            let mut p = zombies.swap_remove(z);
            if g.rng.random_bool(0.5) {
                g.apply(&mut p);
            }
            continue;
        }
        let s = g.rng.random_range(0..slots.len());
        let pid = slots[s].0;
        match slots[s].1.take() {
            None if invoked < cfg.ops => {
                slots[s].1 = Some(g.invoke(pid));
                invoked += 1;
            }
            None => {}
            Some(mut p) => {
                if p.applied.is_none() && g.rng.random_bool(0.5) {
                    g.apply(&mut p);
                    slots[s].1 = Some(p);
                } else {
                    let unapplied = p.applied.is_none().then(|| p.clone());
                    if g.complete(pid, p) {
                        // info: retire the process; an op that had not
                        // taken effect may still do so later.
                        slots[s].0 = next_pid;
                        next_pid += 1;
                        zombies.extend(unapplied);
                    }
                }
            }
        }
    }
    History::new(g.ops).expect("the generator follows Jepsen's rules")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_history() {
        let cfg = SynthConfig {
            seed: 7,
            keys: 3,
            ..SynthConfig::default()
        };
        let a = register_history(&cfg);
        assert_eq!(a, register_history(&cfg));
        let b = register_history(&SynthConfig { seed: 8, ..cfg });
        assert_ne!(a, b);
        assert_eq!(a.pairs().count(), 100);
        let kinds: std::collections::BTreeSet<_> = a.ops().iter().map(|o| o.kind).collect();
        assert_eq!(kinds.len(), 4, "invoke, ok, fail and info all occur");
    }
}
