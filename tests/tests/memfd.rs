//! Sealed memfds, paired: a child creates one with exactly `MFD_CLOEXEC | MFD_ALLOW_SEALING`,
//! seals it and passes it to the broker (allowed); any other flags are a seccomp violation.

use portcullis_tests::scenarios;

scenarios! {
    allowed_memfd_create_and_seal => "memfd-create-and-seal",
    denied_memfd_create_other_flags => "memfd-other-flags",
}
