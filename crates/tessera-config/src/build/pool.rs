//! Channel pools (`[[channel_pool]]` of a system file): memory from which
//! the member VMs allocate inter-VM channels at run time. Their owned form,
//! the rules only pools have (limits, one pool per pair of VMs, AArch64
//! only), and where their backing memory goes: right below the static
//! channels at the top of the hypervisor region. The rules they share with
//! static channels (names, sizes, windows, doorbells, interrupts, fitting
//! in the region) are `channel::validate_channels`'.

use super::channel::channel_bytes;
use super::model::{BoardSpec, SystemSpec};
use super::ConfigError;
use crate::{Arch, MAX_POOL_CHANNELS};

/// One `[[channel_pool]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// `name`.
    pub name: String,
    /// `size`: bytes of backing memory, and of every member's window.
    pub size: u64,
    /// `max_channels`: channels alive at once.
    pub max_channels: u64,
    /// `max_per_vm`: channels one VM holds at once.
    pub max_per_vm: u64,
    /// `members`, in file order.
    pub members: Vec<PoolMemberSpec>,
}

/// One entry of a pool's `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolMemberSpec {
    /// `vm`: the VM's name.
    pub vm: String,
    /// `window`: guest-physical base of the VM's window onto the pool.
    pub window: u64,
    /// `irq`: the SPI of the VM's pool doorbell.
    pub irq: u32,
    /// `doorbell`: guest-physical base of the VM's pool doorbell page.
    pub doorbell: u64,
}

impl PoolSpec {
    /// How the pool is named in error messages: `channel_pool "dyn"`.
    pub fn label(&self) -> String {
        format!("channel_pool {:?}", self.name)
    }
}

/// Host-physical base of each pool's backing memory: carved downwards
/// right below the static channels, in file order.
pub fn pool_hpas(board: &BoardSpec, sys: &SystemSpec) -> Vec<u64> {
    let mut top = (board.hypervisor.base + board.hypervisor.size)
        .saturating_sub(channel_bytes(&sys.channels));
    sys.pools
        .iter()
        .map(|p| {
            top = top.saturating_sub(p.size);
            top
        })
        .collect()
}

/// The rules only pools have: `max_channels` in 1..=32, `max_per_vm` in
/// 1..=`max_channels`, two VMs share at most one pool (so a peer names
/// the pool), and no pools on x86 boards (run-time stage-2 changes exist
/// for AArch64 only).
pub fn validate_pools(file: &str, sys: &SystemSpec, board: &BoardSpec) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (pi, p) in sys.pools.iter().enumerate() {
        let s = p.label();
        let mut push = |field: &str, msg: String| {
            out.push(ConfigError::new(file, &s, field.into(), msg));
        };
        if board.arch != Arch::Aarch64 {
            push(
                "members",
                "channel pools need run-time stage-2 changes, which only the AArch64 \
                 back-end has"
                    .into(),
            );
        }
        let max = MAX_POOL_CHANNELS as u64;
        let channels_ok = (1..=max).contains(&p.max_channels);
        if !channels_ok {
            push(
                "max_channels",
                format!("{} is not in 1..={max}", p.max_channels),
            );
        }
        // Against a bad max_channels only the lower bound means anything.
        if p.max_per_vm == 0 || (channels_ok && p.max_per_vm > p.max_channels) {
            push(
                "max_per_vm",
                format!(
                    "{} is not in 1..=max_channels ({})",
                    p.max_per_vm, p.max_channels
                ),
            );
        }
        for (mi, m) in p.members.iter().enumerate() {
            for o in &sys.pools[..pi] {
                let shared = p.members[..mi]
                    .iter()
                    .filter(|a| a.vm != m.vm)
                    .find(|a| o.members.iter().any(|x| x.vm == a.vm))
                    .filter(|_| o.members.iter().any(|x| x.vm == m.vm));
                if let Some(a) = shared {
                    out.push(ConfigError::new(
                        file,
                        &format!("{s}, vm {:?}", m.vm),
                        format!("members[{mi}].vm"),
                        format!(
                            "VMs {:?} and {:?} already share {}; two VMs share at most \
                             one pool",
                            a.vm,
                            m.vm,
                            o.label()
                        ),
                    ));
                }
            }
        }
    }
    out
}
