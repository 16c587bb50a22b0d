//! String port output (`OUTS`, `REP OUTS`) emulated against the VM's port
//! bus: elements are read from guest memory through the guest's page
//! tables ([`super::guest_walk`]), every address checked against the VM's
//! own RAM. A long `REP` is done in chunks: the instruction restarts with
//! the updated RSI/RCX, so a guest cannot hold its core in the hypervisor.

use super::guest_memory::read_linear;
use super::vmexit::{GuestRegs, VmDevices};
use super::vmx::read;
use crate::exit::AccessWidth;
use crate::vm::Vm;
use x86::vmx::vmcs::{guest, ro};

/// Elements emulated per exit.
const CHUNK: u64 = 256;
/// RFLAGS.DF: string instructions count down.
const RFLAGS_DF: u64 = 1 << 10;
/// VM-exit instruction information: address size 64-bit (bits 9:7 = 2).
const ADDRESS_SIZE_64: u64 = 2;
/// Segment registers with a base in 64-bit mode (FS, GS).
const SEG_FS: u64 = 4;
const SEG_GS: u64 = 5;

/// What became of the instruction.
pub enum Progress {
    /// All elements done: go past it.
    Done,
    /// Some elements left: run it again (RSI/RCX updated).
    Again,
    /// Cannot be emulated (an address outside the VM's RAM, an addressing
    /// form not supported): the VM's policy.
    Refused,
}

/// Emulates `OUTS`/`REP OUTS` of `width`-byte elements to `port`
/// (qualification `q` of the I/O exit).
pub fn string_out(
    vm: &Vm,
    ports: &VmDevices,
    regs: &mut GuestRegs,
    port: u16,
    width: AccessWidth,
    q: u64,
) -> Progress {
    let info = read(ro::VMEXIT_INSTRUCTION_INFO);
    let segment = (info >> 15) & 7;
    if (info >> 7) & 7 != ADDRESS_SIZE_64 || segment == SEG_FS || segment == SEG_GS {
        return Progress::Refused;
    }
    let rep = q & 1 << 5 != 0;
    let count = if rep { regs.rcx } else { 1 };
    let step = width.bytes();
    let down = read(guest::RFLAGS) & RFLAGS_DF != 0;
    for _ in 0..count.min(CHUNK) {
        let Some(value) = read_linear(vm, regs.rsi, step) else {
            return Progress::Refused;
        };
        ports.bus.write(port, width, value as u32);
        regs.rsi = if down {
            regs.rsi.wrapping_sub(step)
        } else {
            regs.rsi.wrapping_add(step)
        };
        if rep {
            regs.rcx -= 1;
        }
    }
    if rep && regs.rcx != 0 {
        Progress::Again
    } else {
        Progress::Done
    }
}
