//! Framing on TCP links: a 4-byte big-endian length, then the message in
//! postcard (a compact serde format). Frames above [`MAX_FRAME`] are
//! refused, so a corrupt length cannot make a reader allocate gigabytes.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted (a SNAP of a big store fits).
pub const MAX_FRAME: usize = 64 << 20;

/// Encodes a value as one frame.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, v);
    out
}

/// Appends a value's frame to `out` (no allocation of its own).
pub fn encode_into<T: Serialize>(out: &mut Vec<u8>, v: &T) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let buf = std::mem::take(out);
    *out = postcard::to_extend(v, buf).expect("our messages always serialize");
    let len = out.len() - start - 4;
    assert!(len <= MAX_FRAME, "frame too large: {len} bytes");
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
}

/// Decodes one frame's body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Reads one frame.
pub async fn read_frame<T: DeserializeOwned>(r: &mut (impl AsyncRead + Unpin)) -> io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    decode(&body)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(w: &mut (impl AsyncWrite + Unpin), v: &T) -> io::Result<()> {
    w.write_all(&encode(v)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Frame, PeerMsg};
    use crate::{Txn, TxnOp, Zxid};

    #[test]
    fn frames_round_trip() {
        let f = Frame::Msg(PeerMsg::Proposal {
            txn: Txn {
                zxid: Zxid::new(2, 9),
                origin: Some((4, 5)),
                op: TxnOp::Set { key: 1, value: -3 },
            },
        });
        let bytes = encode(&f);
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
        let back: Frame = decode(&bytes[4..]).unwrap();
        assert_eq!(back, f);
        assert!(decode::<Frame>(&[0xff, 0xff, 0xff]).is_err());
    }
}
