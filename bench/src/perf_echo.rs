//! turmoil's ceiling for the ensemble's traffic (issue 14): the same
//! hosts, sessions and think time as the node benchmark at ~500 writes/s,
//! each write carried by as many TCP messages as the ensemble sends, but
//! handled by tasks that do nothing else (no protocol, no disk, no
//! timers but the clients' think). What the node costs beyond this is
//! ours; up to this, the simulator's.

use super::perf_node::{builder, measure, Figures};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use turmoil::net::{TcpListener, TcpStream};

/// Servers in the ensemble the echo stands in for.
const SERVERS: u64 = 5;

/// Messages per write: the request, a proposal to each other server and
/// its answer, the reply (the ensemble sends 9-11 with commits).
pub const MESSAGES_PER_WRITE: u64 = 2 + 2 * (SERVERS - 1);

type Res = Result<(), Box<dyn std::error::Error>>;

/// Answers every 8-byte frame on `c` with the same frame.
async fn echo(mut c: TcpStream) {
    let mut b = [0u8; 8];
    while c.read_exact(&mut b).await.is_ok() {
        if c.write_all(&b).await.is_err() {
            break;
        }
    }
}

/// A front connection of server `n`: each request is sent to every other
/// server over connections of its own, their answers awaited, then
/// answered.
async fn front(n: u64, mut c: TcpStream) -> Res {
    let mut peers = Vec::new();
    for p in (1..=SERVERS).filter(|p| *p != n) {
        peers.push(TcpStream::connect((format!("n{p}"), 9000)).await?);
    }
    let mut b = [0u8; 8];
    while c.read_exact(&mut b).await.is_ok() {
        for p in &mut peers {
            p.write_all(&b).await?;
        }
        for p in &mut peers {
            p.read_exact(&mut b).await?;
        }
        c.write_all(&b).await?;
    }
    Ok(())
}

/// Server `n`: echoes on port 9000, fronts clients on port 2181.
async fn server(n: u64) -> Res {
    let peers = TcpListener::bind(("0.0.0.0", 9000)).await?;
    let clients = TcpListener::bind(("0.0.0.0", 2181)).await?;
    tokio::task::spawn_local(async move {
        while let Ok((c, _)) = peers.accept().await {
            tokio::task::spawn_local(echo(c));
        }
    });
    while let Ok((c, _)) = clients.accept().await {
        tokio::task::spawn_local(async move {
            let _ = front(n, c).await;
        });
    }
    Ok(())
}

/// Runs `clients` sessions (one client host, as the node benchmark) for
/// `sim` of simulated time after they settle, each writing an 8-byte
/// request to server `1 + c % 5`, awaiting its answer, then thinking.
pub fn run(clients: usize, think: Duration, sim: Duration) -> Figures {
    let mut s = builder(7).build();
    for n in 1..=SERVERS {
        s.host(format!("n{n}"), move || server(n));
    }
    let acked = Rc::new(Cell::new(0u64));
    let counting = Rc::new(Cell::new(false));
    let (a, k) = (acked.clone(), counting.clone());
    s.client("clients", async move {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (acked, counting) = (a.clone(), k.clone());
            let server = format!("n{}", 1 + c as u64 % SERVERS);
            tasks.push(tokio::task::spawn_local(async move {
                let mut conn = TcpStream::connect((server, 2181)).await?;
                let mut b = [0u8; 8];
                loop {
                    conn.write_all(&b).await?;
                    conn.read_exact(&mut b).await?;
                    if counting.get() {
                        acked.set(acked.get() + 1);
                    }
                    tokio::time::sleep(think).await;
                }
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok(())
    });
    let settle = Duration::from_millis(500);
    let messages = || acked.get() * MESSAGES_PER_WRITE;
    measure(&mut s, settle, (&counting, &acked), sim, &messages)
}
