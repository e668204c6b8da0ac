//! The service mailbox: a small shared memory area through which a child's short service
//! requests and short answers travel instead of its service channel.
//!
//! The broker makes it for a child that runs a registered entry when the child first asks (a
//! doorbell ring with the length [`ASK`]): a sealed memfd of [`MAILBOX_BYTES`] (it can never
//! shrink or grow, so a mapping of it never faults past its end), mapped by both. The broker
//! installs the child's fd of it directly in the child's fd table with the answer to that ring
//! (`SECCOMP_IOCTL_NOTIF_ADDFD`), so it is never an fd in flight on a socket, and a child that
//! never asks costs nothing.
//!
//! A request that encodes into [`REQUEST_BYTES`] is written at the start of the mailbox and
//! the child rings its doorbell with the length and a sequence number (see
//! [`crate::service::DOORBELL_SYSCALL`]). The broker copies those bytes out once and decodes
//! only its copy, so a child rewriting the area meanwhile changes nothing but what it asked.
//! An answer without an fd that encodes into [`ANSWER_BYTES`] is written to the second half and
//! its length is the doorbell's return value; any other answer, and any longer request, goes on
//! the service channel as before. Each side sees the other's bytes once the doorbell's syscall
//! has passed through the kernel (a full barrier both ways).
//!
//! This module is the layout and the copies, on the area seen as words; mapping it is the
//! caller's (`unsafe`, in a `sys` module). The words are atomics because the other process may
//! write them at any time: a torn read yields wrong bytes, never undefined behaviour.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::error::ProtocolViolation;

/// Size of a child's mailbox, in bytes: two pages.
pub const MAILBOX_BYTES: usize = 8192;
/// Longest request the mailbox carries (the first half); a longer one goes on the channel.
pub const REQUEST_BYTES: usize = 4096;
/// Longest answer the mailbox carries (the second half); a longer one goes on the channel.
pub const ANSWER_BYTES: usize = MAILBOX_BYTES - REQUEST_BYTES;
/// The doorbell's length argument that asks for the mailbox instead of naming a request: the
/// ring returns an fd of the mailbox, installed in the child, or fails (no mailbox: send
/// everything on the channel).
pub const ASK: u64 = u64::MAX;
/// Words (8 bytes) in a mailbox.
pub const MAILBOX_WORDS: usize = MAILBOX_BYTES / WORD;

const WORD: usize = std::mem::size_of::<u64>();
const ANSWER_OFFSET: usize = REQUEST_BYTES / WORD;

/// Encodes `request` into the request half of `words`; its length, or `None` if it does not
/// fit (send it on the channel then) or `words` is not a whole mailbox.
pub fn put_request<T: Serialize + ?Sized>(words: &[AtomicU64], request: &T) -> Option<usize> {
    put(words, 0, REQUEST_BYTES, request)
}

/// Decodes the request of `len` bytes the peer says it wrote. A length past the request half
/// is a violation like an oversized datagram; the bytes are copied out once, then decoded.
pub fn take_request<T: DeserializeOwned>(
    words: &[AtomicU64],
    len: u64,
) -> Result<T, ProtocolViolation> {
    take(words, 0, REQUEST_BYTES, len)
}

/// Encodes `answer` into the answer half of `words`; its length, or `None` if it does not fit.
pub fn put_answer<T: Serialize + ?Sized>(words: &[AtomicU64], answer: &T) -> Option<usize> {
    put(words, ANSWER_OFFSET, ANSWER_BYTES, answer)
}

/// Decodes the answer of `len` bytes in the answer half of `words`.
pub fn take_answer<T: DeserializeOwned>(
    words: &[AtomicU64],
    len: u64,
) -> Result<T, ProtocolViolation> {
    take(words, ANSWER_OFFSET, ANSWER_BYTES, len)
}

fn put<T: Serialize + ?Sized>(
    words: &[AtomicU64],
    offset: usize,
    capacity: usize,
    msg: &T,
) -> Option<usize> {
    if words.len() != MAILBOX_WORDS {
        return None;
    }
    let bytes = codec::encode(msg, capacity).ok()?;
    let area = words.get(offset..offset + capacity / WORD)?;
    for (word, chunk) in area.iter().zip(bytes.chunks(WORD)) {
        let mut le = [0u8; WORD];
        le[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(le), Ordering::Relaxed);
    }
    Some(bytes.len())
}

fn take<T: DeserializeOwned>(
    words: &[AtomicU64],
    offset: usize,
    capacity: usize,
    len: u64,
) -> Result<T, ProtocolViolation> {
    let too_large = ProtocolViolation::TooLarge { max: capacity };
    let len = usize::try_from(len).map_err(|_| too_large.clone())?;
    if len > capacity || words.len() != MAILBOX_WORDS {
        return Err(too_large);
    }
    let area = &words[offset..offset + len.div_ceil(WORD)];
    let mut bytes = Vec::with_capacity(area.len() * WORD);
    for word in area {
        bytes.extend_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
    bytes.truncate(len);
    codec::decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::{ServiceRequest, ServiceResponse};

    fn mailbox() -> Vec<AtomicU64> {
        (0..MAILBOX_WORDS).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_request_and_its_answer_travel_in_their_halves() {
        let words = mailbox();
        let request = ServiceRequest::Stat {
            path: "/data/a.txt".into(),
        };
        let len = put_request(&words, &request).unwrap();
        let answer = ServiceResponse::Done;
        let answer_len = put_answer(&words, &answer).unwrap();
        assert_eq!(
            take_request::<ServiceRequest>(&words, len as u64),
            Ok(request)
        );
        assert_eq!(
            take_answer::<ServiceResponse>(&words, answer_len as u64),
            Ok(answer)
        );
    }

    #[test]
    fn a_request_longer_than_its_half_goes_elsewhere() {
        let words = mailbox();
        let fits = ServiceRequest::Stat {
            path: "a".repeat(REQUEST_BYTES - 8),
        };
        let too_long = ServiceRequest::Stat {
            path: "a".repeat(REQUEST_BYTES),
        };
        assert!(put_request(&words, &fits).is_some());
        assert_eq!(put_request(&words, &too_long), None);
        // A slice that is not a whole mailbox is never written.
        assert_eq!(put_request(&words[1..], &fits), None);
    }

    #[test]
    fn a_hostile_length_is_a_violation_never_a_read_past_the_half() {
        let words = mailbox();
        for len in [REQUEST_BYTES as u64 + 1, MAILBOX_BYTES as u64, u64::MAX] {
            assert_eq!(
                take_request::<ServiceRequest>(&words, len),
                Err(ProtocolViolation::TooLarge { max: REQUEST_BYTES })
            );
        }
        // Zeros are no request; a length short of the request's is garbage, not a panic.
        let request = ServiceRequest::Stat {
            path: "/data/a.txt".into(),
        };
        let len = put_request(&words, &request).unwrap() as u64;
        for short in 0..len {
            assert!(take_request::<ServiceRequest>(&words, short).is_err());
        }
        // A request followed by stale bytes the length does not cover decodes alone.
        assert_eq!(take_request::<ServiceRequest>(&words, len), Ok(request));
        assert!(take_request::<ServiceRequest>(&words, len + 1).is_err());
    }
}
