//! SIGKILL of a broker holding children: its zygote and every child are dead within 100 ms of
//! its death. In a test binary of its own, so it never runs beside the heavy supervision tests
//! (cargo runs test binaries one at a time): the deadline is the requirement, and a
//! machine busy with a thousand spawns is not what it is about.

use portcullis_tests::run_scenario;

#[test]
fn broker_death_takes_every_child() {
    run_scenario(env!("CARGO_BIN_EXE_probe"), "broker-death");
}
