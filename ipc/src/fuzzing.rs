//! For the fuzz targets (`fuzz/`) and their stable replay tests only: the receive path's
//! framing checks and decoding, driven from plain bytes instead of a socket. Not a public API.

use crate::error::RecvError;
use crate::frame::{Assembly, Datagram, Progress, RECV_BUFFER_BYTES};
use crate::{codec, ChannelLimits};
use serde::de::DeserializeOwned;

/// Runs `datagrams` through the checks a receiver applies (each as a datagram without fds; one
/// longer than the receive buffer is cut to it and marked truncated, as `recvmsg` would) and
/// decodes every whole message as a `T`, as [`Channel::recv`](crate::Channel::recv) does.
///
/// Returns the results in order, stopping after the first error (framing is lost then); a
/// message still incomplete after the last datagram is left out.
pub fn decode_datagrams<'a, T: DeserializeOwned>(
    datagrams: impl IntoIterator<Item = &'a [u8]>,
    limits: ChannelLimits,
) -> Vec<Result<T, RecvError>> {
    let mut results = Vec::new();
    let mut assembly = Assembly::default();
    for bytes in datagrams {
        let truncated = bytes.len() > RECV_BUFFER_BYTES;
        let datagram = Datagram {
            bytes: &bytes[..bytes.len().min(RECV_BUFFER_BYTES)],
            truncated,
            control_truncated: false,
            fds: Vec::new(),
            unexpected_control: false,
        };
        match assembly.push(datagram, limits) {
            Ok(Progress::NeedMore) => continue,
            Ok(Progress::Complete) => {
                let (payload, _fds) = assembly.take();
                let decoded = codec::decode::<T>(&payload).map_err(RecvError::from);
                let failed = decoded.is_err();
                results.push(decoded);
                if failed {
                    break;
                }
            }
            Err(e) => {
                results.push(Err(e));
                break;
            }
        }
    }
    results
}
