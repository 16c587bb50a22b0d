//! Entering a vCPU and coming back: the assembly that swaps general-purpose
//! registers around VMLAUNCH/VMRESUME, and the Rust exit handler that
//! decodes the exit ([`super::exit_reason`]), lets the neutral layer or the
//! VM's port bus handle it, and applies the outcome. No exit can panic the
//! hypervisor: what nobody handles goes to the VM's `on_unhandled` policy.

use super::exit_reason::{self, reason, ExitInfo, ENTRY_FAILURE};
use super::guest_cpuid::{guest_cpuid, Asker};
use super::interrupts::{ApicCell, VmApics};
use super::irq_lines::VmIoApic;
use super::msr::MsrAccess;
use super::mmio::{Refusal, XapicPage};
use super::vlapic::{Ipi, Lapic, XAPIC_SIZE, MSR_APIC_BASE, MSR_TSC_DEADLINE, MSR_X2APIC_FIRST};
use super::string_io::Progress;
use super::vioapic::{IOAPIC_BASE, IOAPIC_SIZE};
use super::vmx::{read, write};
use crate::config::UnhandledPolicy;
use crate::devices::port::PortBus;
use crate::devices::MmioBus;
use crate::devices::uart16550::VirtualUart16550;
use crate::console::VmLines;
use crate::exit::{Exit, ExitKind};
use crate::vcpu::{self, CpuLocal};
use crate::vm::{self, Ending, Given, Vm};
use alloc::vec::Vec;
use core::arch::global_asm;
use spin::Once;
use tessera_abi::psci;
use x86::vmx::vmcs::{control, guest, ro};

/// The guest's general-purpose registers while the hypervisor runs, at the
/// top of the core's stack (HOST_RSP points here). RSP and RIP live in the
/// VMCS.
#[repr(C, align(16))]
pub struct GuestRegs {
    /// RAX.
    pub rax: u64,
    /// RCX.
    pub rcx: u64,
    /// RDX.
    pub rdx: u64,
    /// RBX.
    pub rbx: u64,
    /// RSP's slot (the guest's RSP lives in the VMCS): holds this core's
    /// [`CpuLocal`], so an exit finds it without a lookup.
    local: *const (),
    /// RBP.
    pub rbp: u64,
    /// RSI.
    pub rsi: u64,
    /// RDI.
    pub rdi: u64,
    /// R8-R15.
    pub r: [u64; 8],
}

impl GuestRegs {
    /// General-purpose register number `i` (x86 encoding: 0 = RAX ... 15
    /// = R15; RSP comes from the VMCS).
    pub fn gpr(&self, i: u8) -> u64 {
        match i & 15 {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            4 => read(guest::RSP),
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            n => self.r[usize::from(n - 8) & 7],
        }
    }

    /// Sets general-purpose register number `i` (as [`GuestRegs::gpr`]).
    pub fn set_gpr(&mut self, i: u8, v: u64) {
        match i & 15 {
            0 => self.rax = v,
            1 => self.rcx = v,
            2 => self.rdx = v,
            3 => self.rbx = v,
            4 => write(guest::RSP, v),
            5 => self.rbp = v,
            6 => self.rsi = v,
            7 => self.rdi = v,
            n => self.r[usize::from(n - 8) & 7] = v,
        }
    }
}

/// Bytes reserved for [`GuestRegs`] at the top of each core's stack.
pub const REGS_SIZE: u64 = core::mem::size_of::<GuestRegs>() as u64;

// The assembly below addresses the fields by these offsets.
const _: () = {
    assert!(core::mem::offset_of!(GuestRegs, rbx) == 24);
    assert!(core::mem::offset_of!(GuestRegs, rbp) == 40);
    assert!(core::mem::offset_of!(GuestRegs, rdi) == 56);
    assert!(core::mem::offset_of!(GuestRegs, r) == 64);
    assert!(REGS_SIZE == 128);
};

global_asm!(
    r#"
.section .text
// tessera_vmx_run(regs: *mut GuestRegs (rdi), launch: u64 (rsi)) -> !
// Switches to the register area (the top of this core's stack), loads the
// guest's registers and enters it.
.global tessera_vmx_run
tessera_vmx_run:
    movq %rdi, %rsp
    cmpq $0, %rsi
    movq 0(%rsp), %rax
    movq 8(%rsp), %rcx
    movq 16(%rsp), %rdx
    movq 24(%rsp), %rbx
    movq 40(%rsp), %rbp
    movq 48(%rsp), %rsi
    movq 56(%rsp), %rdi
    movq 64(%rsp), %r8
    movq 72(%rsp), %r9
    movq 80(%rsp), %r10
    movq 88(%rsp), %r11
    movq 96(%rsp), %r12
    movq 104(%rsp), %r13
    movq 112(%rsp), %r14
    movq 120(%rsp), %r15
    jne 1f
    vmresume
    jmp 2f
1:  vmlaunch
2:  movq %rsp, %rdi
    call tessera_vmx_entry_failed
3:  cli
    hlt
    jmp 3b

// VM exit: HOST_RSP is the register area; save the guest's registers
// there, handle the exit, and resume.
.global tessera_vmx_exit
tessera_vmx_exit:
    movq %rax, 0(%rsp)
    movq %rcx, 8(%rsp)
    movq %rdx, 16(%rsp)
    movq %rbx, 24(%rsp)
    movq %rbp, 40(%rsp)
    movq %rsi, 48(%rsp)
    movq %rdi, 56(%rsp)
    movq %r8, 64(%rsp)
    movq %r9, 72(%rsp)
    movq %r10, 80(%rsp)
    movq %r11, 88(%rsp)
    movq %r12, 96(%rsp)
    movq %r13, 104(%rsp)
    movq %r14, 112(%rsp)
    movq %r15, 120(%rsp)
    movq %rsp, %rdi
    call tessera_vmexit
    movq %rsp, %rdi
    xorl %esi, %esi
    jmp tessera_vmx_run
"#,
    options(att_syntax)
);

extern "C" {
    fn tessera_vmx_run(regs: *mut GuestRegs, launch: u64) -> !;
    fn tessera_vmx_exit();
}

/// What x86 adds to a VM: its emulated port devices and its vCPUs' local
/// APICs.
pub struct VmDevices {
    /// VM id (config).
    pub vm_id: u16,
    /// Emulated port devices.
    pub bus: PortBus,
    /// Its COM port, flushed when the VM ends.
    pub uart: Option<&'static VirtualUart16550<VmLines>>,
    /// The virtual local APIC of each vCPU.
    pub apics: &'static VmApics,
    /// x86 MMIO devices (the xAPIC page, the I/O APIC), after the VM's
    /// own `mmio` bus.
    pub mmio: MmioBus,
    /// Its I/O APIC and interrupt lines.
    pub ioapic: &'static VmIoApic,
}

/// x86 devices of every VM, built at boot.
pub static VM_DEVICES: Once<Vec<VmDevices>> = Once::new();

fn devices_of(vm: &Vm) -> Option<&'static VmDevices> {
    VM_DEVICES
        .get()?
        .iter()
        .find(|p| p.vm_id == vm.config.id)
}

/// Makes vector `vector` pending in vCPU 0's local APIC of VM `vm_id` (an
/// inter-VM doorbell rang it) and kicks that vCPU's core; nothing for a VM
/// id or a vector that does not exist (the build keeps doorbell vectors in
/// 32..=255).
pub fn raise_doorbell(vm_id: u16, vector: u32) {
    let (Some(vm), Ok(vector)) = (
        crate::vm::all().iter().find(|v| v.config.id == vm_id),
        u8::try_from(vector),
    ) else {
        return;
    };
    if let Some(d) = devices_of(vm) {
        d.apics.deliver(vm, usize::MAX, Ipi::Fixed { dest: 0, vector });
    }
}

/// This core's per-core data, outside an exit (vCPU entry).
fn local() -> &'static CpuLocal {
    let p = super::cpu::local(super::cpu::index()) as *const CpuLocal;
    // SAFETY: a core only enters a guest after its per-core pointer is set
    // to its leaked, never-freed CpuLocal.
    unsafe { &*p }
}

/// Starts this core's vCPU at `entry` (RDI = `arg`) with a fresh register
/// area at `stack_top`.
pub fn enter(stack_top: u64, entry: u64, arg: u64) -> ! {
    let local = local();
    super::vmx::reset_guest_state(local.vm, local.vcpu, entry);
    if let Some(d) = devices_of(local.vm) {
        d.apics.start(local.vcpu.id, local.cpu);
        if local.vcpu.id == 0 {
            d.ioapic.reset();
        }
    }
    // Clears what the vCPU's last run left armed.
    super::interrupts::before_entry(local.cpu, false);
    let regs = (stack_top - REGS_SIZE) as *mut GuestRegs;
    // SAFETY: the top REGS_SIZE bytes of this core's stack are reserved for
    // the register area (the boot path starts below them); nothing else
    // lives there.
    unsafe {
        regs.write(GuestRegs {
            rax: 0,
            rcx: 0,
            rdx: 0,
            rbx: 0,
            local: local as *const CpuLocal as *const (),
            rbp: 0,
            rsi: 0,
            rdi: arg,
            r: [0; 8],
        })
    };
    write(x86::vmx::vmcs::host::RSP, regs as u64);
    write(x86::vmx::vmcs::host::RIP, tessera_vmx_exit as *const () as u64);
    let launch = super::vmx::take_first_launch(local.cpu);
    // SAFETY: the VMCS is complete (setup_vmcs + reset_guest_state) and
    // current; the register area is initialised.
    unsafe { tessera_vmx_run(regs, u64::from(launch)) }
}

/// Goes past the emulated instruction (the STI or MOV SS shadow it may
/// have sat in is cleared where an interrupt is injected:
/// `interrupts::before_entry`).
fn advance() {
    let rip = read(guest::RIP);
    write(guest::RIP, rip + read(ro::VMEXIT_INSTRUCTION_LEN));
}

/// Outcome of one exit.
enum Then {
    /// Done: the instruction is emulated, go past it.
    Advance,
    /// Resume at the same instruction (interrupts, injected faults).
    Resume,
    /// Nobody handles it: the VM's policy.
    Unhandled,
}

#[no_mangle]
extern "C" fn tessera_vmexit(regs: &mut GuestRegs) {
    // SAFETY: `enter` stored this core's leaked, never-freed CpuLocal there.
    let local = unsafe { &*(regs.local as *const CpuLocal) };
    let reason = read(ro::EXIT_REASON) as u32;
    let basic = reason as u16;
    let info = if exit_reason::is_instruction_exit(basic) {
        // The hot exits: what they need is in the guest's registers (and
        // an I/O exit's qualification); they never interrupt an event's
        // delivery, so there is nothing to inject again.
        ExitInfo {
            reason,
            qualification: if basic == reason::IO {
                read(ro::EXIT_QUALIFICATION)
            } else {
                0
            },
            gpa: 0,
            rax: regs.rax,
            rcx: regs.rcx,
            rdx: regs.rdx,
            interruption_info: 0,
        }
    } else {
        other_exit_info(local, reason, regs)
    };
    // The preemption timer only says "the APIC timer is due": an x86
    // detail the neutral layer never sees.
    if basic == reason::PREEMPTION_TIMER {
        local.vcpu.count(ExitKind::Irq);
        super::interrupts::before_entry(local.cpu, false);
        return;
    }
    let exit = exit_reason::decode(&info);
    let mut refusal = None;
    let then = match exit {
        Exit::IoRead { port, width } => {
            local.vcpu.count(ExitKind::PortIo);
            let value = devices_of(local.vm).map_or(u32::MAX, |p| p.bus.read(port, width));
            regs.rax = exit_reason::merge_in(regs.rax, width, value);
            Then::Advance
        }
        Exit::IoWrite { port, width } => {
            local.vcpu.count(ExitKind::PortIo);
            if let Some(p) = devices_of(local.vm) {
                p.bus.write(port, width, regs.rax as u32);
            }
            Then::Advance
        }
        Exit::IoString {
            port,
            width,
            input: false,
        } => {
            local.vcpu.count(ExitKind::PortIo);
            match devices_of(local.vm).map(|p| {
                super::string_io::string_out(local.vm, p, regs, port, width, info.qualification)
            }) {
                Some(Progress::Done) => Then::Advance,
                Some(Progress::Again) => Then::Resume,
                Some(Progress::Refused) | None => Then::Unhandled,
            }
        }
        Exit::Cpuid { leaf, subleaf } => {
            local.vcpu.count(ExitKind::SysReg);
            let h = core::arch::x86_64::__cpuid_count(leaf, subleaf);
            let who = Asker {
                vm_id: local.vm.config.id,
                vcpus: local.vm.vcpus.len() as u32,
                vcpu: local.vcpu.id as u32,
            };
            let [a, b, c, d] = guest_cpuid(leaf, [h.eax, h.ebx, h.ecx, h.edx], who);
            regs.rax = a.into();
            regs.rbx = b.into();
            regs.rcx = c.into();
            regs.rdx = d.into();
            Then::Advance
        }
        Exit::MsrRead { msr } => {
            local.vcpu.count(ExitKind::SysReg);
            let value = match super::msr::read(msr) {
                Some(MsrAccess::GuestEfer) => Some(read(guest::IA32_EFER_FULL)),
                Some(MsrAccess::Tsc) => Some(super::interface::counter_now()),
                Some(MsrAccess::Apic) => apic_of(local).and_then(|(_, a)| a.with(|l| apic_read(l, msr))),
                None => None,
            };
            match value {
                Some(v) => {
                    regs.rax = v & 0xffff_ffff;
                    regs.rdx = v >> 32;
                    Then::Advance
                }
                None => Then::Unhandled,
            }
        }
        Exit::MsrWrite { msr, value } => {
            local.vcpu.count(ExitKind::SysReg);
            match super::msr::write(msr) {
                Some(MsrAccess::GuestEfer) => {
                    let efer = read(guest::IA32_EFER_FULL);
                    let paging = read(guest::CR0) & 1 << 31 != 0;
                    match super::msr::write_efer(msr, efer, value, paging) {
                        Some(new) => {
                            write(guest::IA32_EFER_FULL, new);
                            Then::Advance
                        }
                        None => Then::Unhandled,
                    }
                }
                Some(MsrAccess::Apic) => match apic_of(local) {
                    Some((d, a)) => apic_write(local, d, a, msr, value),
                    None => Then::Unhandled,
                },
                _ => Then::Unhandled,
            }
        }
        Exit::Hypercall => {
            vmcall(local, regs);
            Then::Advance
        }
        Exit::Halt => {
            local.vcpu.count(ExitKind::Halt);
            super::interrupts::halt(local, apic_of(local).map(|(_, a)| a));
            Then::Advance
        }
        Exit::ExternalInterrupt { vector } => {
            // A kick or one of the VM's lines, acknowledged on exit and
            // ended here; after a kick the VM may be stopping or resetting.
            local.vcpu.count(ExitKind::Irq);
            match (vector.and_then(super::ioapic::gsi_of), devices_of(local.vm)) {
                (Some(gsi), Some(d)) => d.ioapic.arrived(gsi),
                _ => super::smp::eoi(),
            }
            if !local.vm.is_running() {
                vm::park(local.vm, local.vcpu, local.stack_top);
            }
            Then::Resume
        }
        Exit::InterruptWindow => {
            local.vcpu.count(ExitKind::Irq);
            Then::Resume
        }
        Exit::EptViolation {
            gpa,
            write,
            fetch: false,
        } if super::mmio::is_device(local, devices_of(local.vm), gpa) => {
            match super::mmio::emulate(local, devices_of(local.vm), regs, gpa, write) {
                // RIP is past the instruction already.
                Ok(()) => Then::Resume,
                Err(why) => {
                    refusal = Some(why);
                    Then::Unhandled
                }
            }
        }
        _ => Then::Unhandled,
    };
    let advanced = matches!(then, Then::Advance);
    match then {
        Then::Advance => advance(),
        Then::Resume => {}
        Then::Unhandled => unhandled(local, exit, info.reason, refusal),
    }
    super::interrupts::before_entry(local.cpu, advanced);
}

/// What the VMCS says about an exit that is not an instruction's (EPT,
/// interrupts, the preemption timer, failed entries...). A failed entry
/// stops the VM here; an event whose delivery the exit interrupted is
/// queued to be injected again.
fn other_exit_info(local: &CpuLocal, reason: u32, regs: &GuestRegs) -> ExitInfo {
    if reason & ENTRY_FAILURE != 0 {
        entry_failure(local, reason);
    }
    let basic = reason as u16;
    let ept = basic == reason::EPT_VIOLATION || basic == reason::EPT_MISCONFIG;
    let info = ExitInfo {
        reason,
        qualification: if exit_reason::uses_qualification(basic) {
            read(ro::EXIT_QUALIFICATION)
        } else {
            0
        },
        gpa: if ept {
            read(ro::GUEST_PHYSICAL_ADDR_FULL)
        } else {
            0
        },
        rax: regs.rax,
        rcx: regs.rcx,
        rdx: regs.rdx,
        interruption_info: if basic == reason::EXTERNAL_INTERRUPT {
            read(ro::VMEXIT_INTERRUPTION_INFO) as u32
        } else {
            0
        },
    };
    super::interrupts::requeue_interrupted_event();
    info
}

/// The VM's x86 devices and the trapping vCPU's local APIC.
fn apic_of(local: &CpuLocal) -> Option<(&'static VmDevices, &'static ApicCell)> {
    let d = devices_of(local.vm)?;
    Some((d, d.apics.of(local.vcpu.id)?))
}

/// RDMSR of an APIC MSR; `None` is #GP (an x2APIC register outside
/// x2APIC mode, a write-only or reserved one).
fn apic_read(a: &Lapic, msr: u32) -> Option<u64> {
    match msr {
        MSR_APIC_BASE => Some(a.base()),
        MSR_TSC_DEADLINE => Some(a.tsc_deadline()),
        _ if a.x2apic() => a
            .read(msr - MSR_X2APIC_FIRST, super::interface::counter_now())
            .ok(),
        _ => None,
    }
}

/// WRMSR of an APIC MSR: the APIC decides; an IPI it sends goes to the
/// VM's other vCPUs.
fn apic_write(
    local: &CpuLocal,
    d: &VmDevices,
    apic: &ApicCell,
    msr: u32,
    value: u64,
) -> Then {
    let (done, level_eoi) = apic.with(|a| {
        let done = match msr {
            MSR_APIC_BASE => a.write_base(value).map(|()| None),
            MSR_TSC_DEADLINE => {
                a.write_tsc_deadline(value);
                Ok(None)
            }
            _ if a.x2apic() => a.write(
                msr - MSR_X2APIC_FIRST,
                value,
                super::interface::counter_now(),
            ),
            _ => Err(super::vlapic::Refused),
        };
        (done, a.take_level_eoi())
    });
    if let Some(v) = level_eoi {
        d.ioapic.eoi(v);
    }
    match done {
        Ok(Some(ipi)) => {
            d.apics.deliver(local.vm, local.vcpu.id, ipi);
            Then::Advance
        }
        Ok(None) => Then::Advance,
        Err(_) => Then::Unhandled,
    }
}

/// VMCALL: the Tessera hypercalls of `tessera-abi` (RAX = id, results in
/// RAX, RBX, RCX, RDX, RSI) and, with the PSCI ids, power off and reset.
fn vmcall(local: &CpuLocal, regs: &mut GuestRegs) {
    let fid = regs.rax as u32;
    match fid {
        psci::SYSTEM_OFF | psci::SYSTEM_RESET => {
            local.vcpu.count(ExitKind::Power);
            if let Some(u) = devices_of(local.vm).and_then(|p| p.uart) {
                u.flush();
            }
            if fid == psci::SYSTEM_OFF {
                local.vm.shut_down(Ending::PoweredOff);
            } else {
                local.vm.reset();
            }
            vm::park(local.vm, local.vcpu, local.stack_top);
        }
        _ if psci::is_psci(fid) => {
            local.vcpu.count(ExitKind::Power);
            regs.rax = tessera_abi::NOT_SUPPORTED;
        }
        _ => {
            local.vcpu.count(ExitKind::Hypercall);
            match vcpu::hypercall(local, fid) {
                Some([a, b, c, d, s]) => {
                    regs.rax = a;
                    regs.rbx = b;
                    regs.rcx = c;
                    regs.rdx = d;
                    regs.rsi = s;
                }
                None => regs.rax = tessera_abi::NOT_SUPPORTED,
            }
        }
    }
}

/// General-protection fault, hardware exception, error code 0.
const INJECT_GP: u64 = 13 | 3 << 8 | 1 << 11 | 1 << 31;

#[cold]
#[inline(never)]
fn unhandled(local: &CpuLocal, exit: Exit, raw_reason: u32, why: Option<Refusal>) {
    local.vcpu.count(ExitKind::Unhandled);
    let rip = read(guest::RIP);
    let why = Because(why);
    let what = format_args!(
        "unhandled {} (exit reason {}) at rip {:#x}{}",
        exit, raw_reason as u16, rip, why
    );
    // A triple fault leaves nothing to inject into: the VM stops at least.
    let policy = match (local.vm.config.on_unhandled, raw_reason as u16) {
        (UnhandledPolicy::InjectAbort, reason::TRIPLE_FAULT) => UnhandledPolicy::StopVm,
        (p, _) => p,
    };
    match policy {
        UnhandledPolicy::InjectAbort => {
            local.vm.report(what, Given::GeneralProtection);
            write(control::VMENTRY_INTERRUPTION_INFO_FIELD, INJECT_GP);
            write(control::VMENTRY_EXCEPTION_ERR_CODE, 0);
        }
        UnhandledPolicy::StopVm => {
            local.vm.report(what, Given::Stopped);
            local.vm.shut_down(Ending::Stopped);
            vm::park(local.vm, local.vcpu, local.stack_top);
        }
        UnhandledPolicy::RestartVm => {
            local.vm.report(what, Given::Restarted);
            local.vm.reset();
            vm::park(local.vm, local.vcpu, local.stack_top);
        }
    }
}

/// ` (why)` after an exit's description, when there is a why.
struct Because(Option<Refusal>);

impl core::fmt::Display for Because {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self.0 {
            Some(r) => write!(f, " ({r})"),
            None => Ok(()),
        }
    }
}

/// A VM entry that failed on the guest state: print what explains it and
/// stop the VM (the hypervisor stays up).
#[cold]
fn entry_failure(local: &CpuLocal, raw_reason: u32) -> ! {
    crate::println!(
        "vm {}: VM entry failed (exit reason {:#x}, qualification {:#x}): rip {:#x} cr0 {:#x} cr4 {:#x} efer {:#x} cs ar {:#x} entry controls {:#x}",
        local.vm.config.name,
        raw_reason,
        read(ro::EXIT_QUALIFICATION),
        read(guest::RIP),
        read(guest::CR0),
        read(guest::CR4),
        read(guest::IA32_EFER_FULL),
        read(guest::CS_ACCESS_RIGHTS),
        read(control::VMENTRY_CONTROLS)
    );
    local.vm.shut_down(Ending::Stopped);
    vm::park(local.vm, local.vcpu, local.stack_top)
}

/// VMLAUNCH/VMRESUME fell through: the VMCS itself is wrong (a hypervisor
/// bug). Print the VM-instruction error and stop the VM.
#[no_mangle]
extern "C" fn tessera_vmx_entry_failed(regs: &mut GuestRegs) -> ! {
    // SAFETY: as in `tessera_vmexit`.
    let local = unsafe { &*(regs.local as *const CpuLocal) };
    crate::println!(
        "vm {}: VMLAUNCH/VMRESUME failed: VM-instruction error {} (SDM 31.4); pin {:#x} primary {:#x} secondary {:#x} exit {:#x} entry {:#x}",
        local.vm.config.name,
        read(ro::VM_INSTRUCTION_ERROR),
        read(control::PINBASED_EXEC_CONTROLS),
        read(control::PRIMARY_PROCBASED_EXEC_CONTROLS),
        read(control::SECONDARY_PROCBASED_EXEC_CONTROLS),
        read(control::VMEXIT_CONTROLS),
        read(control::VMENTRY_CONTROLS)
    );
    local.vm.shut_down(Ending::Stopped);
    vm::park(local.vm, local.vcpu, local.stack_top)
}

/// x86 devices of one VM: its port devices from the config, its vCPUs'
/// local APICs and their xAPIC page, its I/O APIC.
pub fn build_devices(vm: &'static Vm) -> VmDevices {
    use tessera_config::EmuPortKind;
    let mut bus = PortBus::default();
    let mut uart = None;
    for d in vm.config.emu_ports {
        match d.kind {
            EmuPortKind::Uart16550 => {
                let dev: &'static VirtualUart16550<VmLines> = alloc::boxed::Box::leak(
                    alloc::boxed::Box::new(
                        VirtualUart16550::new(VmLines {
                            name: vm.config.name,
                        })
                        .with_input(crate::console::vm_input(vm.config.name)),
                    ),
                );
                uart = Some(dev);
                bus.add(d.range(), dev);
            }
        }
    }
    let apics: &'static VmApics = alloc::boxed::Box::leak(alloc::boxed::Box::new(VmApics::new(vm.vcpus.len())));
    let ioapic: &'static VmIoApic =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(VmIoApic::new(vm, apics)));
    let mut mmio = MmioBus::default();
    mmio.add(
        XapicPage::BASE,
        XAPIC_SIZE,
        alloc::boxed::Box::leak(alloc::boxed::Box::new(XapicPage { apics, vm, ioapic })),
    );
    mmio.add(IOAPIC_BASE, IOAPIC_SIZE, ioapic);
    VmDevices {
        vm_id: vm.config.id,
        bus,
        uart,
        apics,
        mmio,
        ioapic,
    }
}
