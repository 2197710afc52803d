//! The client side of the protocol: one connection to one server, one
//! request at a time, as a ZooKeeper client session uses it.

use crate::wire;
use crate::{ClientOp, ClientRequest, ClientResponse, Outcome, Zxid};
use std::io;
use std::time::Duration;
use turmoil::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use turmoil::net::TcpStream;

/// Why a call has no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No response within the timeout: the op may or may not take effect.
    #[error("timed out")]
    Timeout,
    /// The connection failed: the op may or may not take effect.
    #[error("connection lost: {0}")]
    Disconnected(io::Error),
}

/// A client session connected to one server.
pub struct Client {
    /// Buffered: answers that arrive together are read from the socket
    /// once.
    r: tokio::io::BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    session: u64,
    seq: u64,
    seen: Zxid,
}

impl Client {
    /// Connects to `host:port` for `session`, giving up after `timeout`.
    pub async fn connect(
        host: &str,
        port: u16,
        session: u64,
        timeout: Duration,
    ) -> io::Result<Client> {
        let s = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let (r, w) = s.into_split();
        Ok(Client {
            r: tokio::io::BufReader::with_capacity(8 << 10, r),
            w,
            session,
            seq: 0,
            seen: Zxid(0),
        })
    }

    /// The session id.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The highest zxid this session has seen.
    pub fn seen(&self) -> Zxid {
        self.seen
    }

    /// Carries over what a previous connection of the same session saw
    /// (after a reconnect).
    pub fn resume(&mut self, seq: u64, seen: Zxid) {
        self.seq = self.seq.max(seq);
        self.seen = self.seen.max(seen);
    }

    /// The sequence number the next call will use.
    pub fn next_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Sends one request with the next sequence number and waits for its
    /// response.
    pub async fn call(
        &mut self,
        op: ClientOp,
        timeout: Duration,
    ) -> Result<ClientResponse, CallError> {
        let seq = self.seq + 1;
        self.call_seq(seq, op, timeout).await
    }

    /// Sends two requests back to back on this session without waiting
    /// (pipelined), then waits for both answers. ZooKeeper executes a
    /// session's requests in order, so the second sees the first.
    pub async fn call_pair(
        &mut self,
        first: (u64, ClientOp),
        second: (u64, ClientOp),
        timeout: Duration,
    ) -> (
        Result<ClientResponse, CallError>,
        Result<ClientResponse, CallError>,
    ) {
        let seqs = [first.0, second.0];
        self.seq = self.seq.max(first.0).max(second.0);
        for (seq, op) in [first, second] {
            let req = ClientRequest {
                session: self.session,
                seq,
                op,
                seen: self.seen,
            };
            if let Err(e) = wire::write_frame(&mut self.w, &req).await {
                let e2 = io::Error::new(e.kind(), e.to_string());
                return (
                    Err(CallError::Disconnected(e)),
                    Err(CallError::Disconnected(e2)),
                );
            }
        }
        let mut got: [Option<ClientResponse>; 2] = [None, None];
        let wait = async {
            while got.iter().any(Option::is_none) {
                let resp: ClientResponse = wire::read_frame(&mut self.r).await?;
                if let Some(i) = seqs.iter().position(|s| *s == resp.seq) {
                    got[i] = Some(resp);
                }
            }
            Ok::<_, io::Error>(())
        };
        let res = tokio::time::timeout(timeout, wait).await;
        let mut out = got.map(|g| g.ok_or(CallError::Timeout));
        if let Ok(Err(_)) = res {
            for o in out.iter_mut().filter(|o| o.is_err()) {
                *o = Err(CallError::Disconnected(io::Error::other("connection lost")));
            }
        }
        for r in out.iter().flatten() {
            if matches!(
                r.outcome,
                Outcome::Value(_) | Outcome::Written | Outcome::CasFailed { .. }
            ) {
                self.seen = self.seen.max(r.zxid);
            }
        }
        let [a, b] = out;
        (a, b)
    }

    /// Sends one request with sequence number `seq` (a retry reuses the
    /// number of the request it retries, so that servers execute it at most
    /// once) and waits for its response. Responses to earlier requests that
    /// timed out are skipped.
    pub async fn call_seq(
        &mut self,
        seq: u64,
        op: ClientOp,
        timeout: Duration,
    ) -> Result<ClientResponse, CallError> {
        self.seq = self.seq.max(seq);
        let req = ClientRequest {
            session: self.session,
            seq,
            op,
            seen: self.seen,
        };
        wire::write_frame(&mut self.w, &req)
            .await
            .map_err(CallError::Disconnected)?;
        let wait = async {
            loop {
                let resp: ClientResponse = wire::read_frame(&mut self.r).await?;
                if resp.seq == seq {
                    return Ok::<_, io::Error>(resp);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(resp)) => {
                if matches!(
                    resp.outcome,
                    Outcome::Value(_) | Outcome::Written | Outcome::CasFailed { .. }
                ) {
                    self.seen = self.seen.max(resp.zxid);
                }
                Ok(resp)
            }
            Ok(Err(e)) => Err(CallError::Disconnected(e)),
            Err(_) => Err(CallError::Timeout),
        }
    }
}
