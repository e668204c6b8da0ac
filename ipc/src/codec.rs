//! postcard encoding held to the channel's size cap, and decoding that rejects leftovers.

use crate::error::{ProtocolViolation, SendError};
use postcard::ser_flavors::Flavor;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Capacity an encoding starts with.
const INITIAL_ENCODE_BYTES: usize = 256;

/// Longest postcard error text kept in [`ProtocolViolation::Decode`].
const MAX_REASON_CHARS: usize = 200;

/// Encodes `msg` with postcard, failing with `TooLarge` if it exceeds `max` bytes.
/// Bytes past `max` are counted, not stored, so an oversized message costs no more memory
/// than an allowed one.
pub(crate) fn encode<T: Serialize + ?Sized>(msg: &T, max: usize) -> Result<Vec<u8>, SendError> {
    let sink = CappedVec {
        // Most messages are small: one allocation instead of a few doublings from empty.
        bytes: Vec::with_capacity(INITIAL_ENCODE_BYTES.min(max)),
        len: 0,
        max,
    };
    let (bytes, len) = postcard::serialize_with_flavor(msg, sink).map_err(SendError::Encode)?;
    if len > max {
        return Err(SendError::TooLarge { len, max });
    }
    Ok(bytes)
}

/// Decodes one `T` that must span all of `payload`.
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ProtocolViolation> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(ProtocolViolation::TrailingBytes { count: rest.len() }),
        Err(err) => Err(ProtocolViolation::Decode {
            reason: err.to_string().chars().take(MAX_REASON_CHARS).collect(),
        }),
    }
}

/// A postcard output that stores at most `max` bytes and counts the rest.
struct CappedVec {
    bytes: Vec<u8>,
    /// Total bytes the serializer produced, stored or not.
    len: usize,
    max: usize,
}

impl Flavor for CappedVec {
    /// The stored bytes and the total length; `len > max` means the bytes are incomplete.
    type Output = (Vec<u8>, usize);

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.len = self.len.saturating_add(data.len());
        if self.len <= self.max {
            self.bytes.extend_from_slice(data);
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    fn finalize(self) -> postcard::Result<Self::Output> {
        Ok((self.bytes, self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_within_cap_matches_postcard() {
        let msg = (7_u32, String::from("abc"), vec![1_u8, 2, 3]);
        let expected = postcard::to_stdvec(&msg).unwrap();
        assert_eq!(encode(&msg, expected.len()).unwrap(), expected);
    }

    #[test]
    fn encode_over_cap_reports_exact_length() {
        let msg = vec![0_u8; 1000];
        let full = postcard::to_stdvec(&msg).unwrap().len();
        match encode(&msg, 100) {
            Err(SendError::TooLarge { len, max }) => assert_eq!((len, max), (full, 100)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn decode_rejects_trailing_bytes_and_garbage() {
        assert_eq!(decode::<u8>(&[5]), Ok(5));
        assert_eq!(
            decode::<u8>(&[5, 0, 0]),
            Err(ProtocolViolation::TrailingBytes { count: 2 })
        );
        assert!(matches!(
            decode::<bool>(&[2]),
            Err(ProtocolViolation::Decode { .. })
        ));
        assert!(matches!(
            decode::<u32>(&[]),
            Err(ProtocolViolation::Decode { .. })
        ));
    }

    #[test]
    fn decode_reason_is_bounded() {
        let Err(ProtocolViolation::Decode { reason }) = decode::<bool>(&[9]) else {
            panic!("expected a decode error");
        };
        assert!(!reason.is_empty());
        assert!(reason.chars().count() <= MAX_REASON_CHARS);
    }
}
