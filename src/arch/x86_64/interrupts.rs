//! Virtual interrupts of a vCPU, around its virtual local APIC
//! ([`super::vlapic`]): before every VM entry the APIC's timer is brought
//! up to date and its highest pending vector is injected through the
//! VM-entry interruption-information field when the guest can take it
//! (RFLAGS.IF set, no STI or MOV SS shadow, no other event being
//! injected); otherwise interrupt-window exiting brings the vCPU back as
//! soon as it can. The VMX-preemption timer is set to the APIC timer's
//! next expiry, so a guest that never exits still gets its tick. HLT waits
//! here until an interrupt can be taken.

use super::vlapic::{Ipi, Lapic};
use crate::vm::Power;
use super::vmx::{read, write};
use crate::vcpu::CpuLocal;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, Ordering};
use spin::Mutex;
use tessera_config::MAX_CPUS;
use x86::vmx::vmcs::control::{PinbasedControls, PrimaryControls};
use x86::vmx::vmcs::{control, guest, ro};

/// VM-entry interruption information: valid; type external interrupt is
/// 0 in bits 10:8.
const INFO_VALID: u64 = 1 << 31;
/// Interruption information bit 11: deliver an error code.
const INFO_ERROR_CODE: u64 = 1 << 11;
/// Interruption information bit 12 of the IDT-vectoring field (NMI
/// unblocking): undefined on entry, so cleared.
const INFO_NMI_UNBLOCKING: u64 = 1 << 12;
/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;
/// Interruptibility state: blocking by STI, by MOV SS.
const BLOCKING_STI_MOVSS: u64 = 3;

/// Per core: the APIC of the vCPU it runs, the control values its VMCS
/// has now (so only changes cost a VMWRITE) and the base values without
/// interrupt controls.
struct CoreControls {
    apic: AtomicPtr<ApicCell>,
    pin_base: AtomicU32,
    primary_base: AtomicU32,
    pin: AtomicU32,
    primary: AtomicU32,
    /// Interrupt-window exiting or the preemption timer is on.
    extra: AtomicBool,
}

static CONTROLS: [CoreControls; MAX_CPUS] = [const {
    CoreControls {
        apic: AtomicPtr::new(core::ptr::null_mut()),
        pin_base: AtomicU32::new(0),
        primary_base: AtomicU32::new(0),
        pin: AtomicU32::new(0),
        primary: AtomicU32::new(0),
        extra: AtomicBool::new(false),
    }
}; MAX_CPUS];

/// Preemption-timer rate: the timer counts down once every 2^rate TSC
/// ticks (IA32_VMX_MISC bits 4:0); [`NO_PREEMPTION_TIMER`] when the CPU
/// cannot activate it.
static PREEMPTION_RATE: AtomicU8 = AtomicU8::new(NO_PREEMPTION_TIMER);
/// The CPU has no VMX-preemption timer: timer interrupts are delivered at
/// the next exit only.
pub const NO_PREEMPTION_TIMER: u8 = 0xff;

/// Records the controls `setup_vmcs` wrote on `cpu`, and whether (and at
/// which rate) the CPU can run the preemption timer.
pub fn init_core(cpu: usize, pin: u32, primary: u32, preemption_rate: u8) {
    if let Some(c) = CONTROLS.get(cpu) {
        c.extra.store(false, Ordering::Relaxed);
        for (a, v) in [
            (&c.pin_base, pin),
            (&c.pin, pin),
            (&c.primary_base, primary),
            (&c.primary, primary),
        ] {
            a.store(v, Ordering::Relaxed);
        }
    }
    PREEMPTION_RATE.store(preemption_rate, Ordering::Relaxed);
}

/// A vCPU's local APIC behind its lock, with a hint the entry path reads
/// without taking the lock.
pub struct ApicCell {
    lapic: Mutex<Lapic>,
    /// `Lapic::busy` as of the last change (stored with the lock held).
    busy: AtomicBool,
}

impl ApicCell {
    fn new(id: u32) -> Self {
        Self {
            lapic: Mutex::new(Lapic::new(id)),
            busy: AtomicBool::new(false),
        }
    }

    /// Runs `f` on the APIC under its lock, then refreshes the hint.
    pub fn with<R>(&self, f: impl FnOnce(&mut Lapic) -> R) -> R {
        let mut a = self.lapic.lock();
        let r = f(&mut a);
        self.busy.store(a.busy(), Ordering::Release);
        r
    }
}

/// The local APICs of a VM's vCPUs, by vCPU index (= APIC id).
pub struct VmApics {
    apics: alloc::vec::Vec<ApicCell>,
    /// vCPUs that took INIT while off: waiting for a start-up IPI.
    wait_for_sipi: alloc::vec::Vec<AtomicBool>,
}

impl VmApics {
    /// APICs in their reset state for `vcpus` vCPUs.
    pub fn new(vcpus: usize) -> Self {
        Self {
            apics: (0..vcpus).map(|i| ApicCell::new(i as u32)).collect(),
            wait_for_sipi: (0..vcpus).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// The APIC of vCPU `vcpu`.
    pub fn of(&self, vcpu: usize) -> Option<&ApicCell> {
        self.apics.get(vcpu)
    }

    /// Puts vCPU `vcpu`'s APIC back to its reset state as the vCPU starts
    /// on `cpu`, and makes it the APIC [`before_entry`] serves there.
    pub fn start(&'static self, vcpu: usize, cpu: usize) {
        if let (Some(a), Some(c)) = (self.of(vcpu), CONTROLS.get(cpu)) {
            a.with(|l| *l = Lapic::new(vcpu as u32));
            c.apic.store(a as *const _ as *mut _, Ordering::Release);
        }
    }

    /// Delivers an IPI one of the VM's APICs sent. Fixed interrupts become
    /// pending in their target (which is kicked, so a running vCPU exits
    /// and takes it). INIT to a vCPU that is off puts it in
    /// wait-for-SIPI; a start-up IPI then starts it in real mode at
    /// `vector << 12` (the neutral CPU_ON, so the power-state machine
    /// knows). INIT to a running vCPU is ignored (not modelled). A
    /// destination that is not one of the VM's vCPUs gets nothing, like a
    /// missing APIC.
    pub fn deliver(&self, vm: &crate::vm::Vm, sender: usize, ipi: Ipi) {
        let raise = |target: usize, vector: u8| {
            if let (Some(a), Some(v)) = (self.of(target), vm.vcpus.get(target)) {
                a.with(|l| l.raise(vector));
                super::interface::kick_cpu(v.phys_cpu);
            }
        };
        match ipi {
            Ipi::Fixed { dest, vector } => raise(dest as usize, vector),
            Ipi::AllButSelf { vector } => (0..self.apics.len())
                .filter(|&i| i != sender)
                .for_each(|i| raise(i, vector)),
            Ipi::Init { dest } => {
                let off = vm.vcpu_power(dest as usize) == Ok(Power::Off);
                if let Some(w) = self.wait_for_sipi.get(dest as usize).filter(|_| off) {
                    w.store(true, Ordering::Release);
                }
            }
            Ipi::Startup { dest, vector } => {
                let d = dest as usize;
                if self.wait_for_sipi.get(d).is_some_and(|w| w.swap(false, Ordering::AcqRel)) {
                    // Refused only when the VM is stopping or the target
                    // is no longer off: a SIPI then does nothing.
                    let _ = vm.cpu_on(d, u64::from(vector) << 12, 0);
                }
            }
        }
    }
}

/// On a VM exit: an event whose delivery the exit interrupted (the
/// IDT-vectoring information) is injected again, as the SDM requires
/// (27.2.4), so no interrupt or exception is lost.
pub fn requeue_interrupted_event() {
    let info = read(ro::IDT_VECTORING_INFO);
    if info & INFO_VALID == 0 {
        return;
    }
    write(
        control::VMENTRY_INTERRUPTION_INFO_FIELD,
        info & !INFO_NMI_UNBLOCKING,
    );
    if info & INFO_ERROR_CODE != 0 {
        write(
            control::VMENTRY_EXCEPTION_ERR_CODE,
            read(ro::IDT_VECTORING_ERR_CODE),
        );
    }
    // Software interrupts and exceptions restart with their length.
    if matches!((info >> 8) & 7, 4..=6) {
        write(
            control::VMENTRY_INSTRUCTION_LEN,
            read(ro::VMEXIT_INSTRUCTION_LEN),
        );
    }
}

/// Whether the guest can take an external interrupt on this entry.
/// `advanced`: the exit's instruction was emulated and skipped, so an STI
/// or MOV SS shadow it sat in is over (an `sti; hlt` pair takes its
/// interrupt right after HLT). The shadow is cleared only here, where it
/// matters: a stale one delays nothing but an interrupt.
fn can_inject(advanced: bool) -> bool {
    if read(control::VMENTRY_INTERRUPTION_INFO_FIELD) & INFO_VALID != 0
        || read(guest::RFLAGS) & RFLAGS_IF == 0
    {
        return false;
    }
    let shadow = read(guest::INTERRUPTIBILITY_STATE);
    if shadow & BLOCKING_STI_MOVSS == 0 {
        return true;
    }
    if advanced {
        write(
            guest::INTERRUPTIBILITY_STATE,
            shadow & !BLOCKING_STI_MOVSS,
        );
    }
    advanced
}

/// Just before entering the guest on `cpu`: the APIC's timer brought up
/// to date, a pending vector injected if it can be, interrupt-window
/// exiting and the preemption timer set to what is still outstanding.
/// `advanced`: the guest's RIP was moved past an emulated instruction.
#[inline(always)]
pub fn before_entry(cpu: usize, advanced: bool) {
    let Some(c) = CONTROLS.get(cpu) else {
        return;
    };
    // SAFETY: null, or an APIC of the never-freed VM_DEVICES (`start`).
    let Some(apic) = (unsafe { c.apic.load(Ordering::Acquire).as_ref() }) else {
        return;
    };
    if !apic.busy.load(Ordering::Acquire) && !c.extra.load(Ordering::Relaxed) {
        return; // the common case: nothing pending, nothing armed
    }
    update(c, apic, advanced)
}

#[inline(never)]
fn update(c: &CoreControls, apic: &ApicCell, advanced: bool) {
    let (window, fire, now) = apic.with(|a| {
        if !a.busy() {
            return (false, None, 0);
        }
        let now = super::interface::counter_now();
        a.poll(now);
        let mut window = false;
        if let Some(v) = a.pending() {
            if can_inject(advanced) {
                a.accept(v);
                write(
                    control::VMENTRY_INTERRUPTION_INFO_FIELD,
                    INFO_VALID | u64::from(v),
                );
            }
            window = a.pending().is_some();
        }
        (window, a.next_fire(), now)
    });
    set_controls(c, window, fire, now);
}

/// Writes the interrupt-window and preemption-timer controls when they
/// change, and the preemption timer's count when it runs.
fn set_controls(c: &CoreControls, window: bool, fire: Option<u64>, now: u64) {
    let rate = PREEMPTION_RATE.load(Ordering::Relaxed);
    let preempt = fire.filter(|_| rate != NO_PREEMPTION_TIMER);
    let mut primary = c.primary_base.load(Ordering::Relaxed);
    if window {
        primary |= PrimaryControls::INTERRUPT_WINDOW_EXITING.bits();
    }
    let mut pin = c.pin_base.load(Ordering::Relaxed);
    if let Some(at) = preempt {
        pin |= PinbasedControls::VMX_PREEMPTION_TIMER.bits();
        let ticks = at.saturating_sub(now) >> rate;
        write(
            guest::VMX_PREEMPTION_TIMER_VALUE,
            ticks.min(u64::from(u32::MAX)),
        );
    }
    if c.primary.swap(primary, Ordering::Relaxed) != primary {
        write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, primary.into());
    }
    if c.pin.swap(pin, Ordering::Relaxed) != pin {
        write(control::PINBASED_EXEC_CONTROLS, pin.into());
    }
    c.extra.store(window || preempt.is_some(), Ordering::Relaxed);
}

/// HLT: waits until the guest can take an interrupt (its APIC has one
/// pending above its priority, or one of its physical lines is waiting in
/// this core's APIC, and RFLAGS.IF is set), or its VM stops or
/// resets (`park` then does not return). With interrupts off and nothing
/// to wake it, the vCPU waits for its VM to end, like a halted CPU.
pub fn halt(local: &CpuLocal, apic: Option<&ApicCell>) {
    let interruptible = read(guest::RFLAGS) & RFLAGS_IF != 0;
    loop {
        if !local.vm.is_running() {
            crate::vm::park(local.vm, local.vcpu, local.stack_top);
        }
        if let Some(apic) = apic.filter(|_| interruptible) {
            let now = super::interface::counter_now();
            if apic.with(|a| {
                a.poll(now);
                a.pending().is_some()
            }) {
                return;
            }
            // One of the VM's lines waits in this core's APIC: the next
            // entry takes it (an external-interrupt exit) and injects it.
            if super::ioapic::gsi_pending() {
                return;
            }
        }
        super::interface::wait_for_kick();
    }
}
