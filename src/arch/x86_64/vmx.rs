//! VMX root operation: capability checks, VMXON, one VMCS per core (one
//! vCPU per core), its controls adjusted against the capability MSRs, and
//! the 64-bit entry state of a vCPU (SDM vol. 3, chapters 24-27).

use super::controls::{adjust, fix_cr, Missing};
use super::ept::Ept;
use super::guest_paging::{identity_1gib, TABLES_SIZE};
use super::{desc, io_bitmap};
use crate::vm::{Vcpu, Vm};
use alloc::alloc::{alloc_zeroed, Layout};
use core::sync::atomic::{AtomicBool, Ordering};
use x86::bits64::vmx::{vmclear, vmptrld, vmread, vmwrite, vmxon};
use x86::msr::*;
use x86::vmx::vmcs::control::{
    EntryControls, ExitControls, PinbasedControls, PrimaryControls, SecondaryControls,
};
use x86::vmx::vmcs::{control, guest, host};

/// IA32_FEATURE_CONTROL: lock, VMX outside SMX.
const FC_LOCK: u64 = 1 << 0;
const FC_VMX_OUTSIDE_SMX: u64 = 1 << 2;
/// IA32_VMX_BASIC bit 55: the TRUE_* control MSRs exist.
const BASIC_TRUE_CTLS: u64 = 1 << 55;
/// IA32_VMX_EPT_VPID_CAP: 4-level walks, write-back tables.
const EPT_CAP_WALK_4: u64 = 1 << 6;
const EPT_CAP_WB: u64 = 1 << 14;
/// IA32_VMX_EPT_VPID_CAP: single-context INVEPT, single-context INVVPID.
const CAP_INVEPT_SINGLE: u64 = 1 << 20 | 1 << 25;
const CAP_INVVPID_SINGLE: u64 = 1 << 32 | 1 << 41;
/// INVEPT / INVVPID type: single context.
const INV_SINGLE_CONTEXT: u64 = 1;
/// CR4.VMXE.
const CR4_VMXE: u64 = 1 << 13;
/// CR4.PAE.
const CR4_PAE: u64 = 1 << 5;
/// CR0: PE, ET, NE, PG.
const CR0_GUEST: u64 = 1 << 0 | 1 << 4 | 1 << 5 | 1 << 31;
/// EFER.LME | EFER.LMA.
const EFER_LONG_MODE: u64 = 1 << 8 | 1 << 10;

/// Access rights (SDM 24.4.1): 64-bit code, read/write data, busy TSS,
/// unusable.
const AR_CODE64: u64 = 0xa09b;
const AR_DATA: u64 = 0xc093;
const AR_TSS_BUSY: u64 = 0x8b;
const AR_UNUSABLE: u64 = 1 << 16;
/// Real mode (SDM 26.3.1.2 with unrestricted guest): code and data
/// segments, present, accessed, 16-bit.
const AR_CODE16: u64 = 0x9b;
const AR_DATA16: u64 = 0x93;

fn rd(msr: u32) -> u64 {
    // SAFETY: only architectural MSRs whose presence was checked (VMX
    // capability MSRs after CPUID.VMX, EFER, FEATURE_CONTROL).
    unsafe { rdmsr(msr) }
}

/// Writes a VMCS field of the current VMCS. A failure means the field is
/// not supported: a hypervisor bug reported loudly.
pub fn write(field: u32, value: u64) {
    // SAFETY: a VMCS is current on this core (VMPTRLD in `setup_vmcs`);
    // VMWRITE changes only that VMCS.
    if unsafe { vmwrite(field, value) }.is_err() {
        panic!("VMWRITE of field {field:#x} failed");
    }
}

/// Reads a VMCS field of the current VMCS (0 if the field does not exist).
pub fn read(field: u32) -> u64 {
    // SAFETY: as for `write`.
    unsafe { vmread(field) }.unwrap_or(0)
}

fn page() -> Result<u64, &'static str> {
    let layout = Layout::from_size_align(4096, 4096).map_err(|_| "bad layout")?;
    // SAFETY: non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return Err("out of memory for VMX structures");
    }
    Ok(p as u64)
}

fn revision_id() -> u32 {
    rd(IA32_VMX_BASIC) as u32 & 0x7fff_ffff
}

/// What the VMX checks found missing, as one line.
fn missing_line(m: Missing) -> &'static str {
    match (m.field, m.bits) {
        ("secondary", b) if b & SecondaryControls::ENABLE_EPT.bits() != 0 => {
            "this CPU's VMX has no EPT (extended page tables): Tessera needs it"
        }
        ("secondary", b) if b & SecondaryControls::UNRESTRICTED_GUEST.bits() != 0 => {
            "this CPU's VMX has no unrestricted guest: Tessera needs it"
        }
        ("primary", b) if b & PrimaryControls::SECONDARY_CONTROLS.bits() != 0 => {
            "this CPU's VMX has no secondary controls (so no EPT): Tessera needs them"
        }
        _ => "this CPU's VMX lacks a control Tessera needs (see docs/X86.md)",
    }
}

/// Checks that this core can run Tessera's VMs (VMX, its firmware lock,
/// every control we need, EPT). The error is one line for the user.
pub fn check_cpu() -> Result<(), &'static str> {
    let vmx = raw_cpuid::CpuId::new()
        .get_feature_info()
        .is_some_and(|f| f.has_vmx());
    if !vmx {
        return Err("this CPU has no VMX (Intel VT-x): Tessera needs it");
    }
    let fc = rd(IA32_FEATURE_CONTROL);
    if fc & FC_LOCK == 0 {
        // Firmware left it open: enable VMX and lock, as firmware should.
        // SAFETY: documented MSR, writable while unlocked.
        unsafe { wrmsr(IA32_FEATURE_CONTROL, fc | FC_VMX_OUTSIDE_SMX | FC_LOCK) };
    } else if fc & FC_VMX_OUTSIDE_SMX == 0 {
        return Err("VMX is disabled by the firmware (IA32_FEATURE_CONTROL locked without VMX): enable VT-x in the firmware setup");
    }
    controls().map_err(missing_line)?;
    let ept = rd(IA32_VMX_EPT_VPID_CAP);
    if ept & EPT_CAP_WALK_4 == 0 || ept & EPT_CAP_WB == 0 {
        return Err("this CPU's EPT has no 4-level write-back tables: Tessera needs them");
    }
    Ok(())
}

/// Checks this core ([`check_cpu`]) and enters VMX root operation.
pub fn enable_on_this_core() -> Result<(), &'static str> {
    check_cpu()?;
    // SAFETY: CR0/CR4 fixed to what VMX operation requires; the bits the
    // FIXED MSRs force are ones the hypervisor runs with anyway (PE, PG,
    // NE, VMXE).
    unsafe {
        let cr4 = x86::controlregs::cr4().bits() as u64 | CR4_VMXE;
        let cr4 = fix_cr(cr4, rd(IA32_VMX_CR4_FIXED0), rd(IA32_VMX_CR4_FIXED1));
        x86::controlregs::cr4_write(x86::controlregs::Cr4::from_bits_truncate(cr4 as usize));
        let cr0 = x86::controlregs::cr0().bits() as u64;
        let cr0 = fix_cr(cr0, rd(IA32_VMX_CR0_FIXED0), rd(IA32_VMX_CR0_FIXED1));
        x86::controlregs::cr0_write(x86::controlregs::Cr0::from_bits_truncate(cr0 as usize));
    }
    let region = page()?;
    // SAFETY: a fresh page we own; the revision id goes in its first word.
    unsafe { *(region as *mut u32) = revision_id() };
    // SAFETY: CR4.VMXE set, CR0/CR4 fixed, feature control allows VMXON.
    unsafe { vmxon(region) }.map_err(|_| "VMXON failed")?;
    Ok(())
}

/// The five control fields, adjusted.
struct Controls {
    pin: u32,
    primary: u32,
    secondary: u32,
    exit: u32,
    entry: u32,
}

/// The MSR that says which pin-based controls may be set.
fn pin_msr() -> u32 {
    if rd(IA32_VMX_BASIC) & BASIC_TRUE_CTLS != 0 {
        IA32_VMX_TRUE_PINBASED_CTLS
    } else {
        IA32_VMX_PINBASED_CTLS
    }
}

fn controls() -> Result<Controls, Missing> {
    let true_ctls = rd(IA32_VMX_BASIC) & BASIC_TRUE_CTLS != 0;
    let (pin_msr, primary_msr, exit_msr, entry_msr) = if true_ctls {
        (
            IA32_VMX_TRUE_PINBASED_CTLS,
            IA32_VMX_TRUE_PROCBASED_CTLS,
            IA32_VMX_TRUE_EXIT_CTLS,
            IA32_VMX_TRUE_ENTRY_CTLS,
        )
    } else {
        (
            IA32_VMX_PINBASED_CTLS,
            IA32_VMX_PROCBASED_CTLS,
            IA32_VMX_EXIT_CTLS,
            IA32_VMX_ENTRY_CTLS,
        )
    };
    let pin = PinbasedControls::EXTERNAL_INTERRUPT_EXITING | PinbasedControls::NMI_EXITING;
    // No MSR bitmap: every RDMSR/WRMSR exits (the allow-list is ours).
    let primary = PrimaryControls::HLT_EXITING
        | PrimaryControls::USE_IO_BITMAPS
        | PrimaryControls::SECONDARY_CONTROLS;
    let secondary = SecondaryControls::ENABLE_EPT
        | SecondaryControls::ENABLE_VPID
        | SecondaryControls::UNRESTRICTED_GUEST;
    // Acknowledging on exit takes a kick out of the APIC's request
    // register at once (the exit handler ends it): otherwise it would stay
    // pending and exit every entry.
    let exit = ExitControls::HOST_ADDRESS_SPACE_SIZE
        | ExitControls::ACK_INTERRUPT_ON_EXIT
        | ExitControls::SAVE_IA32_EFER
        | ExitControls::LOAD_IA32_EFER;
    let entry = EntryControls::IA32E_MODE_GUEST | EntryControls::LOAD_IA32_EFER;
    let primary = adjust("primary", primary.bits(), rd(primary_msr))?;
    Ok(Controls {
        pin: adjust("pin-based", pin.bits(), rd(pin_msr))?,
        primary,
        secondary: adjust(
            "secondary",
            secondary.bits(),
            rd(IA32_VMX_PROCBASED_CTLS2),
        )?,
        exit: adjust("exit", exit.bits(), rd(exit_msr))?,
        entry: adjust("entry", entry.bits(), rd(entry_msr))?,
    })
}

/// Makes a fresh VMCS current on this core and fills the fields that do
/// not change across vCPU (re)starts: controls, host state, EPT, I/O
/// bitmaps, VPID.
pub fn setup_vmcs(cpu: usize, vm: &Vm, io_bitmaps: u64) -> Result<(), &'static str> {
    let vmcs = page()?;
    // SAFETY: fresh page we own, revision id first.
    unsafe { *(vmcs as *mut u32) = revision_id() };
    // SAFETY: VMX root operation is on (enable_on_this_core); the region is
    // ours and initialised.
    unsafe {
        vmclear(vmcs).map_err(|_| "VMCLEAR failed")?;
        vmptrld(vmcs).map_err(|_| "VMPTRLD failed")?;
    }
    let c = controls().map_err(missing_line)?;
    let preemption_rate = if rd(pin_msr()) >> 32 & u64::from(PinbasedControls::VMX_PREEMPTION_TIMER.bits()) != 0 {
        (rd(IA32_VMX_MISC) & 0x1f) as u8
    } else {
        super::interrupts::NO_PREEMPTION_TIMER
    };
    super::interrupts::init_core(cpu, c.pin, c.primary, preemption_rate);
    write(control::PINBASED_EXEC_CONTROLS, c.pin.into());
    write(control::PRIMARY_PROCBASED_EXEC_CONTROLS, c.primary.into());
    write(control::SECONDARY_PROCBASED_EXEC_CONTROLS, c.secondary.into());
    write(control::VMEXIT_CONTROLS, c.exit.into());
    write(control::VMENTRY_CONTROLS, c.entry.into());
    write(control::EXCEPTION_BITMAP, 0);
    write(control::CR3_TARGET_COUNT, 0);
    write(control::VMEXIT_MSR_STORE_COUNT, 0);
    write(control::VMEXIT_MSR_LOAD_COUNT, 0);
    write(control::VMENTRY_MSR_LOAD_COUNT, 0);
    write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
    // The guest sees CR4 without VMXE (which VMX operation forces on).
    write(control::CR0_GUEST_HOST_MASK, 0);
    write(control::CR4_GUEST_HOST_MASK, CR4_VMXE);
    write(control::IO_BITMAP_A_ADDR_FULL, io_bitmaps);
    write(control::IO_BITMAP_B_ADDR_FULL, io_bitmaps + 4096);
    write(control::EPTP_FULL, Ept::eptp_of(vm.stage2_root));
    write(control::VPID, vm.vmid.into());

    let (gdt, idt, tss) = desc::bases(cpu);
    // SAFETY: reading control registers has no side effect.
    let (cr0, cr3, cr4) = unsafe {
        (
            x86::controlregs::cr0().bits() as u64,
            x86::controlregs::cr3(),
            x86::controlregs::cr4().bits() as u64,
        )
    };
    write(host::CR0, cr0);
    write(host::CR3, cr3);
    write(host::CR4, cr4);
    write(host::CS_SELECTOR, desc::CODE_SELECTOR.into());
    for f in [
        host::SS_SELECTOR,
        host::DS_SELECTOR,
        host::ES_SELECTOR,
        host::FS_SELECTOR,
        host::GS_SELECTOR,
    ] {
        write(f, desc::DATA_SELECTOR.into());
    }
    write(host::TR_SELECTOR, desc::TSS_SELECTOR.into());
    write(host::FS_BASE, 0);
    write(host::GS_BASE, 0);
    write(host::TR_BASE, tss);
    write(host::GDTR_BASE, gdt);
    write(host::IDTR_BASE, idt);
    write(host::IA32_SYSENTER_CS, 0);
    write(host::IA32_SYSENTER_ESP, 0);
    write(host::IA32_SYSENTER_EIP, 0);
    write(host::IA32_EFER_FULL, rd(IA32_EFER));
    Ok(())
}

/// The I/O bitmaps of a VM, in two fresh pages.
pub fn io_bitmaps(vm: &Vm) -> Result<u64, &'static str> {
    let layout = Layout::from_size_align(io_bitmap::SIZE, 4096).map_err(|_| "bad layout")?;
    // SAFETY: non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        return Err("out of memory for I/O bitmaps");
    }
    // SAFETY: fresh, aligned, SIZE bytes, never freed.
    let bitmaps = unsafe { &mut *(p as *mut [u8; io_bitmap::SIZE]) };
    io_bitmap::fill(bitmaps, vm.config.passthrough_ports);
    Ok(p as u64)
}

/// Writes the identity page tables into the VM's boot region and returns
/// their guest-physical address (the guest's CR3).
fn write_guest_tables(vm: &Vm) -> u64 {
    let c = vm.config;
    let Some(r) = c
        .memory_regions
        .iter()
        .find(|r| c.entry_point.wrapping_sub(r.gpa) < r.size)
    else {
        return 0; // validated at build time: the entry point is in RAM
    };
    let offset = r.size - TABLES_SIZE;
    let tables = identity_1gib(r.gpa + offset);
    // SAFETY: the top TABLES_SIZE bytes of a RAM region of this VM
    // (identity-mapped in the hypervisor); no vCPU of it runs now.
    unsafe {
        core::ptr::copy_nonoverlapping(
            tables.as_ptr() as *const u8,
            (r.hpa + offset) as *mut u8,
            TABLES_SIZE as usize,
        )
    };
    r.gpa + offset
}

/// Drops cached translations of the VM (its EPT and its VPID-tagged
/// guest-linear ones) before a vCPU starts afresh, as INIT would: after a
/// VM reset the guest must not see its old TLB. Skipped where the CPU lacks
/// the single-context forms.
fn flush_vm_tlb(vm: &Vm) {
    let caps = rd(IA32_VMX_EPT_VPID_CAP);
    if caps & CAP_INVEPT_SINGLE == CAP_INVEPT_SINGLE {
        let desc: [u64; 2] = [Ept::eptp_of(vm.stage2_root), 0];
        // SAFETY: VMX root operation; the descriptor names this VM's EPT.
        // INVEPT only drops cached translations.
        unsafe {
            core::arch::asm!(
                "invept ({d}), {t}",
                d = in(reg) desc.as_ptr(),
                t = in(reg) INV_SINGLE_CONTEXT,
                options(att_syntax, nostack, readonly)
            )
        };
    }
    if caps & CAP_INVVPID_SINGLE == CAP_INVVPID_SINGLE {
        let desc: [u64; 2] = [u64::from(vm.vmid), 0];
        // SAFETY: as above, for the VM's VPID (never 0).
        unsafe {
            core::arch::asm!(
                "invvpid ({d}), {t}",
                d = in(reg) desc.as_ptr(),
                t = in(reg) INV_SINGLE_CONTEXT,
                options(att_syntax, nostack, readonly)
            )
        };
    }
}

/// Sets the VMCS guest state for vCPU `v` starting at `entry`, with the
/// VM's cached translations dropped: vCPU 0 in 64-bit mode (docs/X86.md,
/// "Entry state"), the others in real mode as a start-up IPI leaves an AP
/// (CS base `entry` = SIPI vector << 12, IP 0).
pub fn reset_guest_state(vm: &Vm, v: &Vcpu, entry: u64) {
    flush_vm_tlb(vm);
    let state = if v.id == 0 {
        StartState {
            cr0: fix_cr(CR0_GUEST, rd(IA32_VMX_CR0_FIXED0), rd(IA32_VMX_CR0_FIXED1)),
            cr3: write_guest_tables(vm),
            cr4: CR4_PAE,
            efer: EFER_LONG_MODE,
            cs: (0x08, 0, 0xffff_ffff, AR_CODE64),
            data: (0x10, 0xffff_ffff, AR_DATA),
            tr: (0x18, 0x67),
            table_limit: 0,
            rip: entry,
        }
    } else {
        // PE and PG may be 0 with unrestricted guest; the other fixed
        // bits (NE) stay as the CPU requires.
        let fixed0 = rd(IA32_VMX_CR0_FIXED0) & !(1 << 0 | 1 << 31);
        StartState {
            cr0: fix_cr(1 << 4, fixed0, rd(IA32_VMX_CR0_FIXED1)),
            cr3: 0,
            cr4: 0,
            efer: 0,
            cs: ((entry >> 4) & 0xffff, entry, 0xffff, AR_CODE16),
            data: (0, 0xffff, AR_DATA16),
            tr: (0, 0xffff),
            table_limit: 0xffff,
            rip: 0,
        }
    };
    load_start_state(&state);
}

/// How a vCPU starts: 64-bit mode for vCPU 0, real mode for an AP after
/// INIT and a start-up IPI (every segment but CS 0 with a 64 KiB limit,
/// paging and protection off: unrestricted guest).
struct StartState {
    /// CR0 (already fixed for VMX), CR3, CR4 as the guest sees it
    /// (VMXE is added and hidden here), EFER.
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
    /// CS selector, base, limit, access rights.
    cs: (u64, u64, u64, u64),
    /// SS, DS, ES, FS, GS: selector, limit, access rights (base 0).
    data: (u64, u64, u64),
    /// TR selector and limit (a busy TSS at 0).
    tr: (u64, u64),
    /// Limit of LDTR (unusable), GDTR and IDTR (base 0).
    table_limit: u64,
    rip: u64,
}

fn load_start_state(s: &StartState) {
    let cr4 = fix_cr(s.cr4 | CR4_VMXE, rd(IA32_VMX_CR4_FIXED0), rd(IA32_VMX_CR4_FIXED1));
    write(guest::CR0, s.cr0);
    write(control::CR0_READ_SHADOW, s.cr0);
    write(guest::CR3, s.cr3);
    write(guest::CR4, cr4);
    write(control::CR4_READ_SHADOW, cr4 & !CR4_VMXE);
    write(guest::IA32_EFER_FULL, s.efer);
    // The IA-32e mode guest entry control must match EFER.LMA.
    let ia32e = u64::from(EntryControls::IA32E_MODE_GUEST.bits());
    let entry_ctls = read(control::VMENTRY_CONTROLS) & !ia32e;
    let long = if s.efer & EFER_LONG_MODE != 0 { ia32e } else { 0 };
    write(control::VMENTRY_CONTROLS, entry_ctls | long);
    let (sel, base, limit, ar) = s.cs;
    write(guest::CS_SELECTOR, sel);
    write(guest::CS_BASE, base);
    write(guest::CS_LIMIT, limit);
    write(guest::CS_ACCESS_RIGHTS, ar);
    let (sel, limit, ar) = s.data;
    for (sel_f, base_f, limit_f, ar_f) in [
        (guest::SS_SELECTOR, guest::SS_BASE, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS),
        (guest::DS_SELECTOR, guest::DS_BASE, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS),
        (guest::ES_SELECTOR, guest::ES_BASE, guest::ES_LIMIT, guest::ES_ACCESS_RIGHTS),
        (guest::FS_SELECTOR, guest::FS_BASE, guest::FS_LIMIT, guest::FS_ACCESS_RIGHTS),
        (guest::GS_SELECTOR, guest::GS_BASE, guest::GS_LIMIT, guest::GS_ACCESS_RIGHTS),
    ] {
        write(sel_f, sel);
        write(base_f, 0);
        write(limit_f, limit);
        write(ar_f, ar);
    }
    write(guest::TR_SELECTOR, s.tr.0);
    write(guest::TR_BASE, 0);
    write(guest::TR_LIMIT, s.tr.1);
    write(guest::TR_ACCESS_RIGHTS, AR_TSS_BUSY);
    write(guest::LDTR_SELECTOR, 0);
    write(guest::LDTR_BASE, 0);
    write(guest::LDTR_LIMIT, s.table_limit);
    write(guest::LDTR_ACCESS_RIGHTS, AR_UNUSABLE);
    write(guest::GDTR_BASE, 0);
    write(guest::GDTR_LIMIT, s.table_limit);
    write(guest::IDTR_BASE, 0);
    write(guest::IDTR_LIMIT, s.table_limit);
    write(guest::RSP, 0);
    write(guest::RIP, s.rip);
    write(guest::DR7, 0x400);
    write(guest::RFLAGS, 0x2);
    write(guest::INTERRUPTIBILITY_STATE, 0);
    write(guest::ACTIVITY_STATE, 0);
    write(guest::PENDING_DBG_EXCEPTIONS, 0);
    write(guest::IA32_DEBUGCTL_FULL, 0);
    write(guest::IA32_SYSENTER_CS, 0);
    write(guest::IA32_SYSENTER_ESP, 0);
    write(guest::IA32_SYSENTER_EIP, 0);
    write(guest::LINK_PTR_FULL, u64::MAX);
    write(control::VMENTRY_INTERRUPTION_INFO_FIELD, 0);
}

static LAUNCHED: [AtomicBool; tessera_config::MAX_CPUS] =
    [const { AtomicBool::new(false) }; tessera_config::MAX_CPUS];

/// Whether this core's VMCS was launched already (VMRESUME from now on);
/// marks it launched.
pub fn take_first_launch(cpu: usize) -> bool {
    LAUNCHED
        .get(cpu)
        .is_some_and(|l| !l.swap(true, Ordering::AcqRel))
}
