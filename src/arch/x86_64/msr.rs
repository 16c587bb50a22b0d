//! The MSRs a guest may touch (every RDMSR/WRMSR exits: there is no MSR
//! bitmap). Anything not listed gets the VM's `on_unhandled` policy (#GP).
//! What each allowed MSR maps to is decided here, purely; the exit handler
//! reads or writes the VMCS field named.

use super::vlapic::{MSR_APIC_BASE, MSR_TSC_DEADLINE, MSR_X2APIC_FIRST, MSR_X2APIC_LAST};

/// IA32_EFER.
pub const IA32_EFER: u32 = 0xc000_0080;
/// IA32_TIME_STAMP_COUNTER.
pub const IA32_TSC: u32 = 0x10;

/// EFER bits a guest may change at will: SCE (SYSCALL) and NXE.
const EFER_GUEST_WRITABLE: u64 = 1 << 0 | 1 << 11;
/// EFER.LME: changeable while paging is off (an AP on its way from real
/// to long mode), #GP while it is on, as on hardware.
const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: read-only, the CPU sets it; a write's LMA is ignored.
const EFER_LMA: u64 = 1 << 10;

/// Where an allowed MSR access goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrAccess {
    /// The guest EFER field of the VMCS.
    GuestEfer,
    /// The time stamp counter (read only; RDTSC is not trapped either).
    Tsc,
    /// The vCPU's virtual local APIC (`super::vlapic`): IA32_APIC_BASE,
    /// IA32_TSC_DEADLINE and the x2APIC registers; it refuses what the
    /// SDM makes #GP.
    Apic,
}

/// The access a WRMSR to `msr` becomes, or `None` if it is not allowed
/// (EFER writes are checked further by [`write_efer`]).
pub const fn write(msr: u32) -> Option<MsrAccess> {
    match read(msr) {
        Some(MsrAccess::Tsc) => None,
        other => other,
    }
}

/// The access a RDMSR of `msr` becomes, or `None` if it is not allowed.
pub const fn read(msr: u32) -> Option<MsrAccess> {
    match msr {
        IA32_EFER => Some(MsrAccess::GuestEfer),
        IA32_TSC => Some(MsrAccess::Tsc),
        MSR_APIC_BASE | MSR_TSC_DEADLINE | MSR_X2APIC_FIRST..=MSR_X2APIC_LAST => {
            Some(MsrAccess::Apic)
        }
        _ => None,
    }
}

/// Whether a WRMSR of `value` to `msr` is allowed, given the current guest
/// EFER (`efer`) and whether the guest's paging is on; the new EFER when
/// it is.
pub const fn write_efer(msr: u32, efer: u64, value: u64, paging: bool) -> Option<u64> {
    let value = (value & !EFER_LMA) | (efer & EFER_LMA);
    let writable = if paging {
        EFER_GUEST_WRITABLE
    } else {
        EFER_GUEST_WRITABLE | EFER_LME
    };
    if msr != IA32_EFER || (value ^ efer) & !writable != 0 {
        return None;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_msrs_are_readable() {
        assert_eq!(read(IA32_EFER), Some(MsrAccess::GuestEfer));
        assert_eq!(read(IA32_TSC), Some(MsrAccess::Tsc));
        assert_eq!(read(0x1b), Some(MsrAccess::Apic)); // IA32_APIC_BASE
        assert_eq!(read(0x6e0), Some(MsrAccess::Apic)); // IA32_TSC_DEADLINE
        assert_eq!(read(0x80b), Some(MsrAccess::Apic)); // x2APIC EOI
        assert_eq!(read(0x900), None);
        assert_eq!(write(IA32_TSC), None, "the TSC is read-only");
        assert_eq!(write(0x838), Some(MsrAccess::Apic));
        assert_eq!(read(0x3a), None); // IA32_FEATURE_CONTROL
        assert_eq!(read(0x480), None); // IA32_VMX_BASIC
    }

    #[test]
    fn efer_writes_change_sce_and_nxe_only() {
        let efer = 0x500; // LME | LMA
        assert_eq!(write_efer(IA32_EFER, efer, 0xd01, true), Some(0xd01));
        assert_eq!(
            write_efer(IA32_EFER, efer, 0x100, true),
            Some(0x500),
            "LMA is read-only"
        );
        assert_eq!(
            write_efer(IA32_EFER, efer, 0x400, true),
            None,
            "LME with paging on"
        );
        assert_eq!(
            write_efer(IA32_EFER, efer, 0x500 | 1 << 12, true),
            None,
            "SVME"
        );
        assert_eq!(write_efer(IA32_TSC, efer, 0x500, true), None);
        // Paging off (an AP in real or protected mode): LME may change.
        assert_eq!(write_efer(IA32_EFER, 0, 0x100, false), Some(0x100));
        assert_eq!(write_efer(IA32_EFER, 0x100, 0, false), Some(0));
        assert_eq!(
            write_efer(IA32_EFER, 0, 0x400, false),
            Some(0),
            "LMA ignored"
        );
    }
}
