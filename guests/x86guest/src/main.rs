//! Tessera's x86_64 test guest. Entered in 64-bit mode at 2 MiB with the
//! hypervisor's identity page tables, interrupts off and no IDT
//! (docs/X86.md). It prints `TEST <name>: PASS|FAIL` lines on its COM1 (a
//! 16550 the hypervisor emulates and tags with the VM name), checks what
//! the hypervisor promises, and powers off with a VMCALL.
#![no_std]
#![no_main]

#[macro_use]
mod rt;

use rt::*;
use tessera_abi::{psci, tessera};

#[no_mangle]
extern "C" fn guest_main() -> ! {
    println!("x86guest: hello from 64-bit mode");

    let [_, b1, c1, _] = cpuid(1);
    check("cpuid-hypervisor-bit", c1 & 1 << 31 != 0);
    check("cpuid-vmx-hidden", c1 & 1 << 5 == 0);
    check("cpuid-apic-id", b1 >> 24 == 0);
    let [max, b, c, d] = cpuid(0x4000_0000);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&b.to_le_bytes());
    sig[4..8].copy_from_slice(&c.to_le_bytes());
    sig[8..].copy_from_slice(&d.to_le_bytes());
    check(
        "cpuid-tessera-leaf",
        &sig == b"TesseraTsrHV" && max >= 0x4000_0001,
    );

    check("port-io-uart-lsr", inb(LSR) == LSR_THRE_TEMT);
    outb(SCR, 0x5a);
    let first = inb(SCR);
    outb(SCR, 0xa5);
    check("port-io-uart-scratch", first == 0x5a && inb(SCR) == 0xa5);
    check("port-io-absent-reads-ones", inb(COM2_LSR) == 0xff);
    let line = b"x86guest: this line went out through rep outsb\n";
    let (rsi, rcx) = rep_outsb(line);
    check(
        "port-io-rep-outsb",
        rcx == 0 && rsi == line.as_ptr() as u64 + line.len() as u64,
    );

    check("vmcall-null", vmcall(tessera::NULL)[0] == 0);
    let [status, id, vcpus, ram, resets] = vmcall(tessera::VM_INFO);
    let [vm_id, ..] = cpuid(0x4000_0001);
    check(
        "vmcall-vm-info",
        status == 0 && id == u64::from(vm_id) && vcpus == 1 && ram == 0x0100_0000 && resets == 0,
    );
    check(
        "vmcall-unknown",
        vmcall(0xc600_00ff)[0] == tessera_abi::NOT_SUPPORTED,
    );

    // What nobody handles becomes a #GP (on_unhandled = "inject-abort").
    install_gp_handler();
    rdmsr(0x3a); // IA32_FEATURE_CONTROL: not on the allow-list
    check("msr-disallowed-gp", gp_count() == 1);
    // EFER is on the allow-list: LME | LMA read back, NXE may be set, LME
    // may not be cleared (#GP).
    let efer = rdmsr_value(0xc000_0080);
    check("msr-efer-read", efer & 0x500 == 0x500);
    wrmsr(0xc000_0080, efer | 1 << 11);
    check(
        "msr-efer-write-nxe",
        rdmsr_value(0xc000_0080) == efer | 1 << 11 && gp_count() == 1,
    );
    wrmsr(0xc000_0080, efer & !(1 << 8));
    check("msr-efer-lme-refused", gp_count() == 2);
    let v = load(0x0200_0000); // 32 MiB: past this VM's 16 MiB of RAM
    check("outside-ram-gp", gp_count() == 3 && v == 0);

    mmio_checks();
    timer_checks();

    println!("x86guest: done, powering off");
    vmcall(psci::SYSTEM_OFF);
    println!("x86guest: still running after SYSTEM_OFF");
    loop {
        // SAFETY: HLT exits to the hypervisor.
        unsafe { core::arch::asm!("hlt") };
    }
}

/// Emulated MMIO: the xAPIC page (the APIC starts in xAPIC mode), reached
/// with loads and stores of each width the hypervisor decodes; what it
/// does not emulate is #GP.
fn mmio_checks() {
    map_xapic_page();
    let version = XAPIC + 0x30;
    let tpr = XAPIC + 0x80;
    check(
        "mmio-load-32",
        mmio::load32(version) == 0x6_0014 && mmio::load32(XAPIC + 0x20) == 0,
    );
    check(
        "mmio-load-8-16",
        mmio::load8_zx(version) == 0x14
            && mmio::load16(version + 2) == 0xffff_ffff_ffff_0006
            && mmio::load_ah(version) == 0x1400,
    );
    mmio::store32_imm_f0(tpr);
    let imm = mmio::load32(tpr);
    let sx = mmio::load8_sx(tpr);
    mmio::store32(tpr, 0x20);
    check(
        "mmio-store-32",
        imm == 0xf0 && sx == 0xffff_fff0 && mmio::load32(tpr) == 0x20,
    );
    mmio::store32(tpr, 0);
    // A 1-byte store and an 8-byte load: decoded, refused by the device.
    let gp = gp_count();
    mmio::store8(tpr, 0x30);
    let v = probe3(|| mmio::load64(version));
    check(
        "mmio-width-refused-gp",
        gp_count() == gp + 2 && v == 0 && mmio::load32(tpr) == 0,
    );
    // Read-modify-write: not emulated.
    mmio::add32(tpr, 1);
    check(
        "mmio-unsupported-gp",
        gp_count() == gp + 3 && mmio::load32(tpr) == 0,
    );
}

/// x2APIC MSRs of the virtual local APIC.
mod apic {
    pub const BASE: u32 = 0x1b;
    pub const ID: u32 = 0x802;
    pub const VERSION: u32 = 0x803;
    pub const SVR: u32 = 0x80f;
    /// ISR bits 64..95 (vectors 0x40-0x5f).
    pub const ISR2: u32 = 0x812;
    pub const LVT_TIMER: u32 = 0x832;
    pub const INITIAL_COUNT: u32 = 0x838;
    pub const DIVIDE: u32 = 0x83e;
    pub const TSC_DEADLINE: u32 = 0x6e0;
    pub const BASE_EXTD: u64 = 1 << 10;
    pub const PERIODIC: u64 = 1 << 17;
    pub const DEADLINE: u64 = 2 << 17;
    pub const MASKED: u64 = 1 << 16;
}

/// Waits (interrupts as they are) until `n` timer interrupts were taken
/// since `from` or `budget` TSC ticks passed; the count reached.
fn spin_for_timer(from: u32, n: u32, budget: u64) -> u32 {
    let start = rdtsc();
    while timer_count() < from + n && rdtsc() - start < budget {
        core::hint::spin_loop();
    }
    timer_count() - from
}

/// The virtual local APIC's timer, in x2APIC mode: periodic interrupts
/// while halted, one held back while interrupts are off and taken at STI,
/// one that interrupts a loop that never exits (the VMX-preemption timer),
/// and the TSC-deadline mode. Each handler EOIs.
fn timer_checks() {
    for v in [0x40, 0x41, 0x42] {
        install_timer_vector(v);
    }
    let base = rdmsr_value(apic::BASE);
    wrmsr(apic::BASE, base | apic::BASE_EXTD);
    let gp = gp_count();
    check(
        "lapic-x2apic-mode",
        rdmsr_value(apic::BASE) & apic::BASE_EXTD != 0
            && rdmsr_value(apic::ID) == 0
            && rdmsr_value(apic::VERSION) & 0xff == 0x14
            && gp_count() == gp,
    );
    // The xAPIC page is gone in x2APIC mode.
    mmio::load32(XAPIC + 0x30);
    check("mmio-xapic-gone-in-x2apic-mode", gp_count() == gp + 1);
    wrmsr(apic::SVR, 0x1ff); // software enable, spurious vector 0xff
    wrmsr(apic::DIVIDE, 0xb); // divide by 1: counts TSC ticks

    // Periodic, every 20,000 TSC ticks, taken in HLT.
    wrmsr(apic::LVT_TIMER, apic::PERIODIC | 0x40);
    wrmsr(apic::INITIAL_COUNT, 20_000);
    let start = rdtsc();
    while timer_count() < 5 && rdtsc() - start < 10_000_000 {
        sti_hlt();
    }
    // Masked with interrupts still on: a tick already pending is taken
    // now, none comes later.
    wrmsr(apic::LVT_TIMER, apic::MASKED | 0x40);
    cli();
    let ticks = timer_count();
    check(
        "timer-periodic-interrupts",
        ticks >= 5 && rdmsr_value(apic::ISR2) == 0,
    );

    // One-shot, expiring while interrupts are off: held, then taken right
    // after STI (interrupt-window exiting).
    wrmsr(apic::LVT_TIMER, 0x41);
    wrmsr(apic::INITIAL_COUNT, 2_000);
    let held = spin_for_timer(ticks, 1, 100_000);
    sti_nop();
    let taken = timer_count() - ticks;
    cli();
    check("timer-held-while-cli", held == 0 && taken == 1);

    // One-shot into a loop that never exits: only the preemption timer
    // can bring the interrupt in.
    let before = timer_count();
    wrmsr(apic::INITIAL_COUNT, 5_000);
    sti_nop();
    let got = spin_for_timer(before, 1, 2_000_000);
    cli();
    check("timer-interrupts-busy-loop", got == 1);

    // TSC-deadline mode.
    let before = timer_count();
    wrmsr(apic::LVT_TIMER, apic::DEADLINE | 0x42);
    wrmsr(apic::TSC_DEADLINE, rdtsc() + 10_000);
    while timer_count() == before {
        sti_hlt();
    }
    cli();
    check(
        "timer-tsc-deadline",
        timer_count() == before + 1 && rdmsr_value(apic::TSC_DEADLINE) == 0,
    );
}
