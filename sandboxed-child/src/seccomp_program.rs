//! A compiled seccomp BPF program as plain data: compiled by the broker, installed by the child.

use serde::{Deserialize, Serialize};

/// Largest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSTRUCTIONS: usize = 4096;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SockFilter {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

/// A seccomp filter program ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompProgram {
    instructions: Vec<SockFilter>,
}

/// Why bytes are not a loadable program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompProgramError {
    /// The byte count is not a whole number of 8-byte instructions.
    #[error("seccomp program of {len} bytes is not a whole number of instructions")]
    Ragged {
        /// Byte count.
        len: usize,
    },
    /// Empty, or more instructions than the kernel accepts.
    #[error("seccomp program has {count} instructions; the kernel takes 1 to {MAX_INSTRUCTIONS}")]
    BadLength {
        /// Instruction count.
        count: usize,
    },
}

impl SeccompProgram {
    /// Parses the native-endian `struct sock_filter` array that libseccomp's
    /// `seccomp_export_bpf` writes.
    pub fn from_bpf_bytes(bytes: &[u8]) -> Result<Self, SeccompProgramError> {
        if bytes.len() % 8 != 0 {
            return Err(SeccompProgramError::Ragged { len: bytes.len() });
        }
        let count = bytes.len() / 8;
        if count == 0 || count > MAX_INSTRUCTIONS {
            return Err(SeccompProgramError::BadLength { count });
        }
        let instructions = bytes
            .chunks_exact(8)
            .map(|b| SockFilter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect();
        Ok(Self { instructions })
    }

    /// The instructions, in order.
    pub fn instructions(&self) -> &[SockFilter] {
        &self.instructions
    }

    /// Checks a program that arrived as data (e.g. over the zygote's control channel).
    pub fn validate(&self) -> Result<(), SeccompProgramError> {
        let count = self.instructions.len();
        if count == 0 || count > MAX_INSTRUCTIONS {
            return Err(SeccompProgramError::BadLength { count });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whole_instructions_only() {
        assert!(SeccompProgram::from_bpf_bytes(&[0; 7]).is_err());
        assert!(SeccompProgram::from_bpf_bytes(&[]).is_err());
        let p = SeccompProgram::from_bpf_bytes(&[6, 0, 0, 0, 0, 0, 0xff, 0x7f]).unwrap();
        assert_eq!(p.instructions()[0].code, 6);
        assert_eq!(p.instructions()[0].k, 0x7fff_0000);
    }

    #[test]
    fn rejects_oversized_programs() {
        let bytes = vec![0u8; 8 * (MAX_INSTRUCTIONS + 1)];
        assert_eq!(
            SeccompProgram::from_bpf_bytes(&bytes),
            Err(SeccompProgramError::BadLength {
                count: MAX_INSTRUCTIONS + 1
            })
        );
    }
}
