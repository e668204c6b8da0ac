//! The hostile-child suite: each attack runs in a fresh broker process next to a bystander echo
//! child (`src/bin/probe/hostile.rs`). For every attack: the broker never panics, aborts or
//! blocks; the attacker ends as it should and only it; the broker's fd count returns to its
//! baseline once the attacker is reaped; and the bystander's median echo round trip during the
//! attack stays within max(2 × its baseline, baseline + 2 ms), measured in the same run — the
//! probe prints the figures and the ratio (`cargo test --test hostile -- --nocapture`). The
//! bound and why it has a floor are explained at the top of the probe module.

use portcullis_tests::scenarios;

scenarios! {
    // Garbage datagrams, 64 per attacker, on the application channel and on the service channel.
    garbage_frames_end_only_the_sender => "hostile-suite-garbage",
    // A length field claiming 2^40 bytes (1 TiB), on both channels: refused without allocating.
    tebibyte_length_field_is_refused => "hostile-suite-tebibyte",
    // 1,000 fds in one message: tests/hostile_fds.rs, a binary of its own (see there why).
    // 10,000 service requests a second for two seconds: every one answered, the flooder
    // rate-limited, nobody else slowed.
    flood_of_10000_messages_per_second => "hostile-suite-flood",
    // Half a message on each channel, then exit.
    half_a_message_then_death => "hostile-suite-half-then-die",
    // A child that stops reading while the broker sends it a large answer and a large message.
    child_that_stops_reading_never_blocks_the_broker => "hostile-suite-stop-reading",
    // A child that opens 10,000 brokered files: its own open_fds limit stops it (EMFILE), not
    // the broker.
    ten_thousand_brokered_opens_stop_at_the_childs_limit => "hostile-suite-open-many",
    // 1,000 empty rings of the service doorbell, held to the child's request rate, and a
    // request written without one: nothing but its own child waits; and its pair, the
    // doorbell's syscall with a wrong tag, is a seccomp violation.
    doorbell_storm_serves_only_what_was_written => "hostile-suite-doorbell",
    doorbell_with_a_wrong_tag_is_a_violation => "hostile-suite-doorbell-wrong-tag",
    // A mailbox request longer than the mailbox's request half, and one of garbage bytes: each
    // ends its sender as a protocol violation, found by the child's broker thread.
    mailbox_garbage_ends_only_the_sender => "hostile-suite-mailbox",
    // A mailbox request rung twice with one sequence number is performed once (the repeat gets
    // the same answer); with a new number it is performed again (and fails: it exists). A
    // second ask for the mailbox is refused (EEXIST).
    mailbox_ring_repeated_is_served_once => "hostile-suite-mailbox-replay",
}
