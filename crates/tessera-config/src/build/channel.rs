//! Static inter-VM channels (`[[channel]]` of a system file): their owned
//! form, the build-time rules about them, and where their backing memory
//! goes (the top of the hypervisor's region, see docs/IVC.md).

use super::codegen::HYPERVISOR_IMAGE_OFFSET;
use super::dtb::DtChannel;
use super::model::{BoardSpec, SystemSpec, VmSpec};
use super::plan::{HEAP_MIN, HYP_CODE_RESERVE};
use super::validate::vgic_frames;
use super::validate::IPA_LIMIT;
use super::ConfigError;
use crate::{Arch, DOORBELL_SIZE, MAX_CHANNEL_MEMBERS};

const PAGE: u64 = 0x1000;
/// Longest channel name (it names device-tree nodes).
pub const MAX_CHANNEL_NAME_LEN: usize = 31;

/// How a member may access the shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `"rw"`: read and write.
    ReadWrite,
    /// `"ro"`: read only; a write is a stage-2 permission fault.
    ReadOnly,
}

/// One `[[channel]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// `name`.
    pub name: String,
    /// `size` in bytes.
    pub size: u64,
    /// `members`, in file order (a member's index is its position).
    pub members: Vec<MemberSpec>,
}

/// One entry of a channel's `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    /// `vm`: the VM's name.
    pub vm: String,
    /// `gpa`: where the shared memory appears in that VM.
    pub gpa: u64,
    /// `access`.
    pub access: Access,
    /// `irq`: the SPI the VM receives when a peer rings it.
    pub irq: u32,
    /// `doorbell`: guest-physical base of its doorbell page.
    pub doorbell: u64,
}

impl ChannelSpec {
    /// How the channel is named in error messages: `channel "ping"`.
    pub fn label(&self) -> String {
        format!("channel {:?}", self.name)
    }
}

/// Host-physical base of each channel's backing memory: carved downwards
/// from the end of the hypervisor region, in file order.
pub fn channel_hpas(board: &BoardSpec, channels: &[ChannelSpec]) -> Vec<u64> {
    let mut top = board.hypervisor.base + board.hypervisor.size;
    channels
        .iter()
        .map(|c| {
            top = top.saturating_sub(c.size);
            top
        })
        .collect()
}

/// The physical INTID carrying each static channel member's doorbell
/// ([`crate::ChannelMember::line`]), indexed `[channel][member]`: the
/// board's spare SPIs (`gic.spare_spis`) handed out in config order —
/// channel by channel, member by member — from `first` upwards. Members
/// beyond `count`, every member on a board without spare SPIs and every
/// member on an x86 board get 0: their rings take the software path
/// (docs/IVC.md). Pools get no line.
pub fn doorbell_lines(board: &BoardSpec, channels: &[ChannelSpec]) -> Vec<Vec<u32>> {
    let (first, count) = match board.arch {
        Arch::Aarch64 => (board.gic.spare_spi_first, board.gic.spare_spi_count),
        Arch::X86_64 => (0, 0),
    };
    let mut next = 0u32;
    channels
        .iter()
        .map(|c| {
            c.members
                .iter()
                .map(|_| {
                    let line = if next < count {
                        first.checked_add(next).unwrap_or(0)
                    } else {
                        0
                    };
                    next = next.saturating_add(1);
                    line
                })
                .collect()
        })
        .collect()
}

/// The channels VM `vm` is a member of, as its device tree describes them.
pub fn dt_channels(sys: &SystemSpec, vm: &str) -> Vec<DtChannel> {
    let mut out = Vec::new();
    for (id, c) in sys.channels.iter().enumerate() {
        for m in c.members.iter().filter(|m| m.vm == vm) {
            out.push(DtChannel {
                name: c.name.clone(),
                id: id as u32,
                gpa: m.gpa,
                size: c.size,
                doorbell: m.doorbell,
                irq: m.irq,
                read_only: m.access == Access::ReadOnly,
            });
        }
    }
    out
}

/// Bytes of the hypervisor region the static channels take.
pub fn channel_bytes(channels: &[ChannelSpec]) -> u64 {
    channels.iter().map(|c| c.size).sum()
}

/// Bytes of the hypervisor region the static channels and the pools take
/// together (the pools sit right below the channels).
pub fn ivc_bytes(sys: &SystemSpec) -> u64 {
    channel_bytes(&sys.channels) + sys.pools.iter().map(|p| p.size).sum::<u64>()
}

/// `[start, end)` with a 128-bit end.
pub(super) type Win = (u128, u128);

pub(super) fn win(base: u64, size: u64) -> Win {
    (u128::from(base), u128::from(base) + u128::from(size))
}

pub(super) fn overlaps(a: Win, b: Win) -> bool {
    a.0 < b.1 && b.0 < a.1
}

pub(super) fn show(w: Win) -> String {
    format!("[{:#x}, {:#x})", w.0, w.1)
}

/// Named guest-physical windows and named interrupts of one VM.
type Claims = (Vec<(String, Win)>, Vec<(String, u32)>);

/// The VM's own guest-physical windows (RAM, vGIC, devices), named, and
/// its interrupts.
pub(super) fn vm_windows(vm: &VmSpec, board: &BoardSpec) -> Claims {
    let mut w = Vec::new();
    for (i, r) in vm.memory_regions.iter().enumerate() {
        w.push((format!("memory_regions[{i}]"), win(r.gpa, r.size)));
    }
    for (field, base, size) in vgic_frames(vm, board) {
        w.push((format!("devices.vgic.{field}"), win(base, size)));
    }
    let mut irqs = Vec::new();
    for (i, d) in vm.emu_devices.iter().enumerate() {
        w.push((format!("devices.emu_devices[{i}]"), win(d.gpa, d.size)));
        if let Some(irq) = d.irq {
            irqs.push((format!("devices.emu_devices[{i}].irq"), irq));
        }
    }
    for (i, p) in vm.passthrough_devices.iter().enumerate() {
        let Some(dev) = board.devices.iter().find(|d| d.name == p.name) else {
            continue; // reported by the VM rules
        };
        let f = format!("devices.passthrough_devices[{i}]");
        w.push((
            f.clone(),
            win(p.gpa.unwrap_or(dev.mmio.base), dev.mmio.size),
        ));
        for irq in p.irqs.as_ref().unwrap_or(&dev.irqs) {
            irqs.push((format!("{f}.irqs"), *irq));
        }
    }
    (w, irqs)
}

/// What the rules check alike in a static channel and a channel pool: a
/// named grant of `size` bytes to members, each with a memory window, a
/// doorbell page and an interrupt.
pub(super) struct Grant<'a> {
    /// `channel "ping"` or `channel_pool "dyn"`.
    pub scope: String,
    /// `channel` or `channel_pool` (for duplicate-name messages).
    pub kind: &'static str,
    pub name: &'a str,
    pub size: u64,
    pub members: Vec<GrantMember<'a>>,
}

/// One member of a [`Grant`].
pub(super) struct GrantMember<'a> {
    pub vm: &'a str,
    /// Guest-physical base of its memory window (`size` bytes).
    pub mem: u64,
    /// The window's field name: `gpa` or `window`.
    pub mem_field: &'static str,
    pub irq: u32,
    pub doorbell: u64,
}

/// Every static channel and every pool of a system config, as grants.
pub(super) fn grants(sys: &SystemSpec) -> Vec<Grant<'_>> {
    let channels = sys.channels.iter().map(|c| Grant {
        scope: c.label(),
        kind: "channel",
        name: &c.name,
        size: c.size,
        members: c
            .members
            .iter()
            .map(|m| GrantMember {
                vm: &m.vm,
                mem: m.gpa,
                mem_field: "gpa",
                irq: m.irq,
                doorbell: m.doorbell,
            })
            .collect(),
    });
    let pools = sys.pools.iter().map(|p| Grant {
        scope: p.label(),
        kind: "channel_pool",
        name: &p.name,
        size: p.size,
        members: p
            .members
            .iter()
            .map(|m| GrantMember {
                vm: &m.vm,
                mem: m.window,
                mem_field: "window",
                irq: m.irq,
                doorbell: m.doorbell,
            })
            .collect(),
    });
    channels.chain(pools).collect()
}

/// Checks every channel and channel pool of a system config (rules of
/// docs/IVC.md). Errors are scoped `channel "c"` or `channel "c", vm "v"`
/// (`channel_pool "p"` for pools); fields are `size`, `members[i].gpa` and
/// so on. The pools' own limits are checked by `pool::validate_pools`.
pub fn validate_channels(file: &str, sys: &SystemSpec, board: &BoardSpec) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut push = |scope: &str, field: String, msg: String| {
        out.push(ConfigError::new(file, scope, field, msg));
    };
    // Windows and interrupts already claimed by earlier grants, per VM.
    let mut claimed: Vec<(String, String, Win)> = Vec::new();
    let mut claimed_irqs: Vec<(String, String, u32)> = Vec::new();
    let hyp = board.hypervisor;
    let fixed = HYPERVISOR_IMAGE_OFFSET + HYP_CODE_RESERVE + HEAP_MIN;
    let mut total: u128 = 0;
    let all = grants(sys);
    for (ci, c) in all.iter().enumerate() {
        let s = c.scope.as_str();
        if c.name.is_empty()
            || c.name.len() > MAX_CHANNEL_NAME_LEN
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            push(
                s,
                "name".into(),
                format!(
                    "{:?} must be 1 to {MAX_CHANNEL_NAME_LEN} characters of [a-z0-9_-]",
                    c.name
                ),
            );
        }
        let same_kind = all[..ci].iter().filter(|o| o.kind == c.kind);
        if let Some(j) = same_kind.clone().position(|o| o.name == c.name) {
            push(
                s,
                "name".into(),
                format!("{:?} is also the name of {}[{j}]", c.name, c.kind),
            );
        }
        if c.size == 0 {
            push(s, "size".into(), "size must be greater than 0".into());
        } else if !c.size.is_multiple_of(PAGE) {
            push(
                s,
                "size".into(),
                format!("{:#x} is not a multiple of 4 KiB", c.size),
            );
        }
        total += u128::from(c.size);
        if total + u128::from(fixed) > u128::from(hyp.size) {
            push(
                s,
                "size".into(),
                format!(
                    "the channels' backing memory up to this one ({total:#x} bytes) does not \
                     fit in the hypervisor region ({:#x} bytes, of which {fixed:#x} are its \
                     image, stacks and minimum heap); grow the board's hypervisor.size",
                    hyp.size
                ),
            );
        }
        if c.members.len() < 2 {
            push(
                s,
                "members".into(),
                format!(
                    "{} member(s) given; a {} needs at least two VMs",
                    c.members.len(),
                    c.kind
                ),
            );
        }
        if c.members.len() > MAX_CHANNEL_MEMBERS {
            push(
                s,
                "members".into(),
                format!(
                    "{} members given, at most {MAX_CHANNEL_MEMBERS}",
                    c.members.len()
                ),
            );
        }
        for (mi, m) in c.members.iter().enumerate() {
            let ms = format!("{s}, vm {:?}", m.vm);
            let f = |x: &str| format!("members[{mi}].{x}");
            let Some(vm) = sys.vms.iter().find(|v| v.name == m.vm) else {
                push(&ms, f("vm"), format!("no VM is named {:?}", m.vm));
                continue;
            };
            if let Some(j) = c.members[..mi].iter().position(|o| o.vm == m.vm) {
                push(&ms, f("vm"), format!("the VM is already members[{j}]"));
            }
            for (name, v) in [(m.mem_field, m.mem), ("doorbell", m.doorbell)] {
                if !v.is_multiple_of(PAGE) {
                    push(&ms, f(name), format!("{v:#x} is not 4 KiB aligned"));
                }
            }
            // Arm: an SPI of the VM's virtual GIC; x86: a vector of its
            // vCPU 0's local APIC (not a GSI: no I/O APIC line is involved).
            let arm = board.arch == Arch::Aarch64;
            let number = if arm { "INTID" } else { "vector" };
            if arm && !(32..1020).contains(&m.irq) {
                push(
                    &ms,
                    f("irq"),
                    format!("INTID {} is not an SPI (expected 32..=1019)", m.irq),
                );
            } else if !arm && !(32..=255).contains(&m.irq) {
                push(
                    &ms,
                    f("irq"),
                    format!(
                        "{} is not an interrupt vector a VM can be given (expected 32..=255)",
                        m.irq
                    ),
                );
            }
            let shm = win(m.mem, c.size);
            let bell = win(m.doorbell, DOORBELL_SIZE);
            let (windows, irqs) = vm_windows(vm, board);
            for (name, w) in [(m.mem_field, shm), ("doorbell", bell)] {
                if w.1 > u128::from(IPA_LIMIT) {
                    push(
                        &ms,
                        f(name),
                        format!("guest window {} ends above the 39-bit IPA limit", show(w)),
                    );
                }
                for (of, o) in &windows {
                    if overlaps(w, *o) {
                        push(
                            &ms,
                            f(name),
                            format!(
                                "guest window {} overlaps the VM's {of} {}",
                                show(w),
                                show(*o)
                            ),
                        );
                    }
                }
                for (v, of, o) in &claimed {
                    if *v == m.vm && overlaps(w, *o) {
                        push(
                            &ms,
                            f(name),
                            format!("guest window {} overlaps {of} {}", show(w), show(*o)),
                        );
                    }
                }
            }
            if overlaps(shm, bell) {
                push(
                    &ms,
                    f("doorbell"),
                    format!(
                        "doorbell {} overlaps the {}'s own memory {}",
                        show(bell),
                        c.kind,
                        show(shm)
                    ),
                );
            }
            // (x86 devices' lines are GSIs, another number space.)
            for (of, irq) in irqs.iter().filter(|_| arm) {
                if *irq == m.irq {
                    push(
                        &ms,
                        f("irq"),
                        format!("{number} {irq} is also the interrupt of {of}"),
                    );
                }
            }
            for (v, of, irq) in &claimed_irqs {
                if *v == m.vm && *irq == m.irq {
                    push(
                        &ms,
                        f("irq"),
                        format!("{number} {irq} is also the interrupt of {of}"),
                    );
                }
            }
            let mf = m.mem_field;
            claimed.push((m.vm.into(), format!("{s} members[{mi}].{mf}"), shm));
            claimed.push((m.vm.into(), format!("{s} members[{mi}].doorbell"), bell));
            claimed_irqs.push((m.vm.into(), format!("{s} members[{mi}].irq"), m.irq));
        }
    }
    out
}
