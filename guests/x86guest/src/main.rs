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
    rdmsr(0x1b); // IA32_APIC_BASE: not on the allow-list (nothing is yet)
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

    println!("x86guest: done, powering off");
    vmcall(psci::SYSTEM_OFF);
    println!("x86guest: still running after SYSTEM_OFF");
    loop {
        // SAFETY: HLT exits to the hypervisor.
        unsafe { core::arch::asm!("hlt") };
    }
}
