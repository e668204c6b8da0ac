//! From a child's policy limits to the mechanisms that enforce them.
//!
//! - rlimits, always (the floor): `RLIMIT_CPU` (`cpu_seconds`), `RLIMIT_FSIZE`
//!   (`file_size_bytes`), `RLIMIT_NOFILE` (`open_fds` plus [`OWN_FDS`]), and `RLIMIT_AS`
//!   (`memory_bytes`) only when the broker has no memory cgroup to put the child in — address
//!   space is not memory (thread stacks and allocator arenas reserve far more than they touch),
//!   so the cgroup limit is the right one wherever it exists;
//! - the supervisor: the wall clock (`wall_ms`) and what a forbidden syscall does
//!   (`on_violation`);
//! - cgroups: memory, tasks and CPU share (`crate::cgroup`).
//!
//! Must never: raise a limit of the broker's baseline (a profile only ever narrows it).
//!
//! Public so that tools can show what a profile becomes without starting a broker (the
//! `portcullis explain` command): [`child_limits`] is the function the broker itself calls at
//! every spawn.

use std::time::Duration;

use portcullis_child::{Rlimit, RlimitResource};
use portcullis_policy::{Limits, OnViolation};

use crate::cgroup::CgroupLimits;

/// File descriptors a child may hold besides brokered ones: fds 0–4 (stdio, its two channels)
/// and room for its own pipes, eventfds and epoll sets.
pub const OWN_FDS: u64 = 32;

/// How one child is limited, derived from its profile's [`Limits`] by [`child_limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildLimits {
    /// Installed by the child during lockdown (soft = hard).
    pub rlimits: Vec<Rlimit>,
    /// What a syscall outside the allowlist does.
    pub on_violation: OnViolation,
    /// Killed by the broker after this long.
    pub wall: Option<Duration>,
    /// `RLIMIT_CPU` in microseconds, to recognise a CPU-limit end.
    pub cpu_limit_us: Option<u64>,
    /// Memory, tasks and CPU share, for the child's cgroup (when the broker has one).
    pub cgroup: CgroupLimits,
}

/// Sets `resource` to `value` in `rlimits`, never above a value the baseline already has.
fn narrow(rlimits: &mut Vec<Rlimit>, resource: RlimitResource, value: u64) {
    match rlimits.iter_mut().find(|r| r.resource == resource) {
        Some(existing) => existing.value = existing.value.min(value),
        None => rlimits.push(Rlimit { resource, value }),
    }
}

/// The limits of a child whose baseline rlimits are `baseline` and whose profile says `limits`,
/// on a machine with `cpus` CPUs. `memory_cgroup`: the broker puts children in a memory cgroup
/// (else `RLIMIT_AS` stands in).
///
/// The broker calls this at every spawn with [`BrokerConfig::rlimits`](crate::BrokerConfig) as
/// the baseline. Pure: it reads nothing from the host.
///
/// ```
/// use portcullis_broker::limits::{child_limits, OWN_FDS};
/// use portcullis_broker::{default_rlimits, RlimitResource};
/// let limits = child_limits(&default_rlimits(), &portcullis_policy::Limits::default(), true, 2);
/// let nofile = limits.rlimits.iter().find(|r| r.resource == RlimitResource::OpenFiles);
/// assert_eq!(nofile.map(|r| r.value), Some(64 + OWN_FDS));
/// assert_eq!(limits.cgroup.memory_bytes, Some(512 << 20));
/// ```
pub fn child_limits(
    baseline: &[Rlimit],
    limits: &Limits,
    memory_cgroup: bool,
    cpus: u32,
) -> ChildLimits {
    let mut rlimits = baseline.to_vec();
    narrow(
        &mut rlimits,
        RlimitResource::OpenFiles,
        u64::from(limits.open_fds).saturating_add(OWN_FDS),
    );
    if limits.cpu_seconds > 0 {
        narrow(&mut rlimits, RlimitResource::CpuSeconds, limits.cpu_seconds);
    }
    if limits.file_size_bytes > 0 {
        narrow(
            &mut rlimits,
            RlimitResource::FileSize,
            limits.file_size_bytes,
        );
    }
    if !memory_cgroup && limits.memory_bytes > 0 {
        narrow(
            &mut rlimits,
            RlimitResource::AddressSpace,
            limits.memory_bytes,
        );
    }
    let cpu_limit_us = rlimits
        .iter()
        .find(|r| r.resource == RlimitResource::CpuSeconds)
        .map(|r| r.value.saturating_mul(1_000_000));
    ChildLimits {
        rlimits,
        on_violation: limits.on_violation,
        wall: (limits.wall_ms > 0).then(|| Duration::from_millis(limits.wall_ms)),
        cpu_limit_us,
        cgroup: CgroupLimits::from_policy(limits, cpus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(l: &ChildLimits, resource: RlimitResource) -> Option<u64> {
        l.rlimits
            .iter()
            .find(|r| r.resource == resource)
            .map(|r| r.value)
    }

    #[test]
    fn defaults_map_to_rlimits_and_supervision() {
        let baseline = crate::default_rlimits();
        let l = child_limits(&baseline, &Limits::default(), true, 2);
        assert_eq!(value(&l, RlimitResource::OpenFiles), Some(64 + OWN_FDS));
        assert_eq!(value(&l, RlimitResource::FileSize), Some(1 << 30));
        assert_eq!(value(&l, RlimitResource::CpuSeconds), None);
        assert_eq!(
            value(&l, RlimitResource::AddressSpace),
            None,
            "the cgroup limits memory"
        );
        assert_eq!(value(&l, RlimitResource::Core), Some(0));
        assert_eq!(l.wall, None);
        assert_eq!(l.on_violation, OnViolation::Kill);
    }

    #[test]
    fn without_a_memory_cgroup_address_space_is_the_floor() {
        let l = child_limits(&crate::default_rlimits(), &Limits::default(), false, 2);
        assert_eq!(value(&l, RlimitResource::AddressSpace), Some(512 << 20));
    }

    #[test]
    fn a_profile_never_raises_the_baseline() {
        let limits = Limits {
            open_fds: 100_000,
            cpu_seconds: 3,
            wall_ms: 1500,
            on_violation: OnViolation::Deny,
            ..Limits::default()
        };
        let l = child_limits(&crate::default_rlimits(), &limits, true, 2);
        assert_eq!(value(&l, RlimitResource::OpenFiles), Some(256));
        assert_eq!(value(&l, RlimitResource::CpuSeconds), Some(3));
        assert_eq!(l.cpu_limit_us, Some(3_000_000));
        assert_eq!(l.wall, Some(Duration::from_millis(1500)));
        assert_eq!(l.on_violation, OnViolation::Deny);
    }

    #[test]
    fn zero_means_no_limit() {
        let limits = Limits {
            memory_bytes: 0,
            file_size_bytes: 0,
            ..Limits::default()
        };
        let l = child_limits(&crate::default_rlimits(), &limits, false, 2);
        assert_eq!(value(&l, RlimitResource::AddressSpace), None);
        assert_eq!(value(&l, RlimitResource::FileSize), None);
    }
}
