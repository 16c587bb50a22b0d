//! Emulated MMIO on x86: an EPT violation at a guest-physical address
//! where the VM has an emulated device. The instruction at the guest's RIP
//! is fetched through its page tables (every byte checked against the
//! VM's RAM, [`super::guest_memory`]) and decoded
//! ([`super::mmio_decode`]); the access goes to the VM's device buses (the
//! neutral `vm.mmio`, then the x86 devices: the xAPIC page), a load's
//! value to its register, and RIP past the instruction. What cannot be
//! emulated comes back as a [`Refusal`] the exit handler turns into the
//! VM's policy with a rate-limited line; nothing here can panic.

use super::guest_memory::fetch_code;
use super::interrupts::VmApics;
use super::mmio_decode::{self, MmioAccess, Source, Unsupported};
use super::vlapic::XAPIC_BASE;
use super::vmexit::{GuestRegs, VmDevices};
use super::vmx::{read, write};
use crate::devices::{AccessError, Accessor, MmioDevice};
use crate::exit::{AccessWidth, ExitKind};
use crate::vcpu::CpuLocal;
use x86::vmx::vmcs::guest;

/// CS access rights bit 13: a 64-bit code segment.
const AR_LONG: u64 = 1 << 13;

/// Why an EPT violation on a device could not be emulated.
#[derive(Debug, Clone, Copy)]
pub enum Refusal {
    /// The vCPU is not in 64-bit mode (only 64-bit code is decoded).
    NotLongMode,
    /// The instruction bytes are not in the VM's RAM.
    Fetch,
    /// The instruction is not a plain move (or does not decode).
    Decode(Unsupported),
    /// The decoded access disagrees with the hardware's (a load reported
    /// as a write: the instruction changed under us).
    Mismatch,
    /// The device refused the access (width, offset, mode).
    Device(AccessWidth),
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Refusal::NotLongMode => f.write_str("not in 64-bit mode"),
            Refusal::Fetch => f.write_str("instruction not readable"),
            Refusal::Decode(u) => write!(f, "{u}"),
            Refusal::Mismatch => f.write_str("instruction does not match the access"),
            Refusal::Device(w) => write!(f, "{}-byte access refused by the device", w.bytes()),
        }
    }
}

/// Whether the VM has an emulated device at `gpa`.
pub fn is_device(local: &CpuLocal, devices: Option<&VmDevices>, gpa: u64) -> bool {
    local.vm.mmio.find(gpa).is_some() || devices.is_some_and(|d| d.mmio.find(gpa).is_some())
}

fn bus_read(local: &CpuLocal, d: Option<&VmDevices>, gpa: u64, w: AccessWidth) -> Result<u64, AccessError> {
    let from = Accessor { vcpu: local.vcpu.id };
    match (local.vm.mmio.find(gpa), d) {
        (Some(_), _) => local.vm.mmio.read(from, gpa, w),
        (None, Some(d)) => d.mmio.read(from, gpa, w),
        (None, None) => Err(AccessError::Invalid),
    }
}

fn bus_write(local: &CpuLocal, d: Option<&VmDevices>, gpa: u64, w: AccessWidth, v: u64) -> Result<(), AccessError> {
    let from = Accessor { vcpu: local.vcpu.id };
    match (local.vm.mmio.find(gpa), d) {
        (Some(_), _) => local.vm.mmio.write(from, gpa, w, v),
        (None, Some(d)) => d.mmio.write(from, gpa, w, v),
        (None, None) => Err(AccessError::Invalid),
    }
}

/// Emulates the access at `gpa` (`write`: the hardware says it was a
/// store) and moves RIP past the instruction.
pub fn emulate(
    local: &CpuLocal,
    devices: Option<&VmDevices>,
    regs: &mut GuestRegs,
    gpa: u64,
    is_write: bool,
) -> Result<(), Refusal> {
    if read(guest::CS_ACCESS_RIGHTS) & AR_LONG == 0 {
        return Err(Refusal::NotLongMode);
    }
    let rip = read(guest::RIP);
    let (bytes, n) = fetch_code(local.vm, rip).ok_or(Refusal::Fetch)?;
    let (access, len) = mmio_decode::decode(&bytes[..n]).map_err(Refusal::Decode)?;
    match access {
        MmioAccess::Load {
            dest,
            width,
            sign_extend,
        } => {
            if is_write {
                return Err(Refusal::Mismatch);
            }
            local.vcpu.count(ExitKind::MmioRead);
            let value = bus_read(local, devices, gpa, width).map_err(|_| Refusal::Device(width))?;
            let old = regs.gpr(dest.index);
            regs.set_gpr(dest.index, mmio_decode::load_result(old, dest, width, sign_extend, value));
        }
        MmioAccess::Store { src, width } => {
            if !is_write {
                return Err(Refusal::Mismatch);
            }
            local.vcpu.count(ExitKind::MmioWrite);
            let value = match src {
                Source::Imm(v) => v,
                Source::Reg(r) => mmio_decode::store_value(regs.gpr(r.index), r, width),
            };
            bus_write(local, devices, gpa, width, value).map_err(|_| Refusal::Device(width))?;
        }
    }
    write(guest::RIP, rip.wrapping_add(len as u64));
    Ok(())
}

/// The xAPIC MMIO page of a VM's vCPUs (each vCPU sees its own APIC at
/// the same address): the same register model as the x2APIC MSRs.
pub struct XapicPage {
    /// The VM's APICs.
    pub apics: &'static VmApics,
    /// Where IPIs the page sends are delivered from: the VM's vCPUs.
    pub vm: &'static crate::vm::Vm,
    /// Where EOIs of level-triggered vectors go: the VM's I/O APIC.
    pub ioapic: &'static super::irq_lines::VmIoApic,
}

impl XapicPage {
    /// Guest-physical base of the page.
    pub const BASE: u64 = XAPIC_BASE;
}

impl MmioDevice for XapicPage {
    fn read(&self, from: Accessor, offset: u64, width: AccessWidth) -> Result<u64, AccessError> {
        let apic = self.apics.of(from.vcpu).ok_or(AccessError::Invalid)?;
        let now = super::interface::counter_now();
        apic.with(|a| a.read_xapic(offset, width.bytes(), now))
            .map(u64::from)
            .map_err(|_| AccessError::Invalid)
    }

    fn write(&self, from: Accessor, offset: u64, width: AccessWidth, value: u64) -> Result<(), AccessError> {
        let apic = self.apics.of(from.vcpu).ok_or(AccessError::Invalid)?;
        let now = super::interface::counter_now();
        let (ipi, level_eoi) = apic.with(|a| {
            let ipi = a.write_xapic(offset, width.bytes(), value as u32, now);
            (ipi, a.take_level_eoi())
        });
        if let Some(v) = level_eoi {
            self.ioapic.eoi(v);
        }
        let ipi = ipi.map_err(|_| AccessError::Invalid)?;
        if let Some(ipi) = ipi {
            self.apics.deliver(self.vm, from.vcpu, ipi);
        }
        Ok(())
    }
}
