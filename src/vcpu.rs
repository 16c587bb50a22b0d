//! The arch-neutral half of running a vCPU: per-core data, and what each
//! kind of [`Exit`] means for the VM (device buses, hypercalls). The arch
//! back-end decodes traps into exits, calls [`handle`], and applies the
//! [`Outcome`] (advance the PC, inject an abort).

use crate::devices::Accessor;
use crate::exit::{Exit, ExitKind};
use crate::vm::{Vcpu, Vm};

/// What one core runs; reached through the arch's per-core pointer.
pub struct CpuLocal {
    /// Physical CPU index.
    pub cpu: usize,
    /// The VM this core belongs to.
    pub vm: &'static Vm,
    /// The vCPU this core runs.
    pub vcpu: &'static Vcpu,
    /// Top of this core's EL2 stack (reset when a vCPU is (re)started).
    pub stack_top: u64,
}

impl CpuLocal {
    /// This core's vCPU as the devices of its VM see it.
    #[inline(always)]
    pub fn accessor(&self) -> Accessor {
        Accessor { vcpu: self.vcpu.id }
    }
}

/// Access to the trapped vCPU's general-purpose registers.
pub trait GuestRegisters {
    /// Register `reg` (the zero register reads 0).
    fn gpr(&self, reg: u8) -> u64;
    /// Sets register `reg` (writes to the zero register are dropped).
    fn set_gpr(&mut self, reg: u8, value: u64);
}

/// Result of handling an exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: resume after the trapping instruction.
    Advance,
    /// Nobody handles it: apply the VM's `on_unhandled` policy.
    Unhandled,
}

/// Handles the exits every architecture shares: emulated MMIO and system
/// registers. Others (calls, halts, interrupts) are the arch's.
#[inline(always)]
pub fn handle(local: &CpuLocal, exit: Exit, regs: &mut impl GuestRegisters) -> Outcome {
    let vm = local.vm;
    let from = local.accessor();
    match exit {
        Exit::MmioRead {
            addr,
            width,
            reg,
            sign_extend,
            reg_is_64,
        } => {
            local.vcpu.count(ExitKind::MmioRead);
            match vm.mmio.read(from, addr, width) {
                Ok(raw) => {
                    regs.set_gpr(reg, width.extend_load(raw, sign_extend, reg_is_64));
                    Outcome::Advance
                }
                Err(_) => Outcome::Unhandled,
            }
        }
        Exit::MmioWrite { addr, width, reg } => {
            local.vcpu.count(ExitKind::MmioWrite);
            match vm.mmio.write(from, addr, width, regs.gpr(reg)) {
                Ok(()) => Outcome::Advance,
                Err(_) => Outcome::Unhandled,
            }
        }
        Exit::SysRegRead { sysreg, reg } => {
            local.vcpu.count(ExitKind::SysReg);
            match vm.sysregs.read(from, sysreg) {
                Ok(v) => {
                    regs.set_gpr(reg, v);
                    Outcome::Advance
                }
                Err(_) => Outcome::Unhandled,
            }
        }
        Exit::SysRegWrite { sysreg, reg } => {
            local.vcpu.count(ExitKind::SysReg);
            match vm.sysregs.write(from, sysreg, regs.gpr(reg)) {
                Ok(()) => Outcome::Advance,
                Err(_) => Outcome::Unhandled,
            }
        }
        _ => Outcome::Unhandled,
    }
}

/// Serves Tessera hypercall `nr`: up to five result values (x0-x4), or `None` for
/// a call that is not one of the hot ones (then try [`cold_hypercall`]).
#[inline(always)]
pub fn hypercall(local: &CpuLocal, nr: u32) -> Option<[u64; 5]> {
    use tessera_abi::tessera;
    let vm = local.vm;
    match nr {
        tessera::NULL => Some([0; 5]),
        tessera::VM_INFO => Some([
            0,
            vm.config.id as u64,
            vm.vcpus.len() as u64,
            vm.boot_ram_size,
            vm.resets() as u64,
        ]),
        _ => None,
    }
}

/// Serves the Tessera hypercalls off the hot path (the IVC calls of
/// docs/IVC.md): `regs` holds x0-x4 (x1-x3 the arguments) and gets the
/// results. Returns false, changing nothing, for an unknown call. Out of
/// line and separate from [`hypercall`]: merged into it, its results made
/// NULL take 50 more instructions.
#[cold]
#[inline(never)]
pub fn cold_hypercall(local: &CpuLocal, nr: u32, regs: &mut [u64; 5]) -> bool {
    match crate::ivc::hypercall(local.vm.config.id, nr, [regs[1], regs[2], regs[3]]) {
        Some(r) => {
            *regs = r;
            true
        }
        None => false,
    }
}
