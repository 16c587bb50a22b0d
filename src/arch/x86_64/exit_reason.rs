//! VM-exit reasons and qualifications (SDM vol. 3, appendix C and 28.2.1)
//! decoded into the arch-neutral [`Exit`].

use crate::exit::{AccessWidth, Exit};

/// Basic exit reasons Tessera handles or names.
pub mod reason {
    /// Exception or NMI.
    pub const EXCEPTION_NMI: u16 = 0;
    /// External interrupt.
    pub const EXTERNAL_INTERRUPT: u16 = 1;
    /// Triple fault.
    pub const TRIPLE_FAULT: u16 = 2;
    /// INIT signal.
    pub const INIT: u16 = 3;
    /// Start-up IPI.
    pub const SIPI: u16 = 4;
    /// Interrupt window.
    pub const INTERRUPT_WINDOW: u16 = 7;
    /// CPUID.
    pub const CPUID: u16 = 10;
    /// HLT.
    pub const HLT: u16 = 12;
    /// VMCALL.
    pub const VMCALL: u16 = 18;
    /// I/O instruction.
    pub const IO: u16 = 30;
    /// RDMSR.
    pub const RDMSR: u16 = 31;
    /// WRMSR.
    pub const WRMSR: u16 = 32;
    /// VM entry failed: invalid guest state.
    pub const ENTRY_INVALID_GUEST_STATE: u16 = 33;
    /// VM entry failed: MSR loading.
    pub const ENTRY_MSR_LOADING: u16 = 34;
    /// EPT violation.
    pub const EPT_VIOLATION: u16 = 48;
    /// EPT misconfiguration.
    pub const EPT_MISCONFIG: u16 = 49;
    /// The VMX-preemption timer counted down to zero.
    pub const PREEMPTION_TIMER: u16 = 52;
}

/// Exit-reason bit 31: the VM entry failed.
pub const ENTRY_FAILURE: u32 = 1 << 31;

/// What the VMCS says about one exit, read by the back-end.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExitInfo {
    /// Exit reason (basic reason in bits 15:0).
    pub reason: u32,
    /// Exit qualification.
    pub qualification: u64,
    /// Guest-physical address (EPT exits).
    pub gpa: u64,
    /// Guest RAX, RCX, RDX (CPUID leaf, MSR index and value).
    pub rax: u64,
    /// Guest RCX.
    pub rcx: u64,
    /// Guest RDX.
    pub rdx: u64,
    /// VM-exit interruption information (external interrupts).
    pub interruption_info: u32,
}

/// Whether basic reason `basic` is an exit caused by an instruction the
/// guest was executing (CPUID, HLT, VMCALL, IN/OUT, RDMSR, WRMSR). Such an
/// exit never interrupts the delivery of an event (SDM 27.2.4: the
/// instruction runs only after delivery completed), so its IDT-vectoring
/// information is never valid and need not be read.
pub const fn is_instruction_exit(basic: u16) -> bool {
    matches!(
        basic,
        reason::CPUID | reason::HLT | reason::VMCALL | reason::IO | reason::RDMSR | reason::WRMSR
    )
}

/// Whether [`decode`] (or the handler of the exit) uses the exit
/// qualification of basic reason `basic`; other exits skip the VMREAD.
pub const fn uses_qualification(basic: u16) -> bool {
    matches!(
        basic,
        reason::IO | reason::EPT_VIOLATION | reason::EPT_MISCONFIG | reason::SIPI
    )
}

/// Width of an I/O access from qualification bits 2:0 (0, 1 or 3).
fn io_width(q: u64) -> Option<AccessWidth> {
    match q & 7 {
        0 => Some(AccessWidth::Byte),
        1 => Some(AccessWidth::Half),
        3 => Some(AccessWidth::Word),
        _ => None,
    }
}

/// The neutral exit for a VM exit. Reasons Tessera does not know become
/// [`Exit::Unknown`] with the raw reason.
pub fn decode(info: &ExitInfo) -> Exit {
    let q = info.qualification;
    let unknown = Exit::Unknown {
        syndrome: u64::from(info.reason),
    };
    if info.reason & ENTRY_FAILURE != 0 {
        return unknown;
    }
    match info.reason as u16 {
        reason::EXTERNAL_INTERRUPT => Exit::ExternalInterrupt {
            // Bit 31: valid (only with "acknowledge interrupt on exit").
            vector: (info.interruption_info & 1 << 31 != 0).then_some(info.interruption_info as u8),
        },
        reason::TRIPLE_FAULT => Exit::TripleFault,
        reason::INIT => Exit::Init,
        reason::SIPI => Exit::Sipi { vector: q as u8 },
        reason::INTERRUPT_WINDOW => Exit::InterruptWindow,
        reason::CPUID => Exit::Cpuid {
            leaf: info.rax as u32,
            subleaf: info.rcx as u32,
        },
        reason::HLT => Exit::Halt,
        reason::VMCALL => Exit::Hypercall,
        reason::IO => {
            let Some(width) = io_width(q) else {
                return unknown;
            };
            let port = (q >> 16) as u16;
            let input = q & 1 << 3 != 0;
            // Bit 4: string instruction (bit 5, REP, implies it).
            if q & 1 << 4 != 0 {
                Exit::IoString { port, width, input }
            } else if input {
                Exit::IoRead { port, width }
            } else {
                Exit::IoWrite { port, width }
            }
        }
        reason::RDMSR => Exit::MsrRead {
            msr: info.rcx as u32,
        },
        reason::WRMSR => Exit::MsrWrite {
            msr: info.rcx as u32,
            value: (info.rdx & 0xffff_ffff) << 32 | (info.rax & 0xffff_ffff),
        },
        reason::EPT_VIOLATION => Exit::EptViolation {
            gpa: info.gpa,
            write: q & 1 << 1 != 0,
            fetch: q & 1 << 2 != 0,
        },
        reason::EPT_MISCONFIG => Exit::EptMisconfig { gpa: info.gpa },
        _ => unknown,
    }
}

/// RAX after an `IN` of `width` bytes returned `value`: AL and AX keep the
/// rest of RAX, a 4-byte read zero-extends into RAX (like every 32-bit
/// register write in 64-bit mode).
pub const fn merge_in(rax: u64, width: AccessWidth, value: u32) -> u64 {
    match width {
        AccessWidth::Byte => (rax & !0xff) | (value as u64 & 0xff),
        AccessWidth::Half => (rax & !0xffff) | (value as u64 & 0xffff),
        _ => value as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(reason: u16, qualification: u64) -> ExitInfo {
        ExitInfo {
            reason: u32::from(reason),
            qualification,
            ..ExitInfo::default()
        }
    }

    #[test]
    fn io_qualifications() {
        // IN AL, DX with DX = 0x3fd.
        assert_eq!(
            decode(&info(reason::IO, 0x3fd << 16 | 1 << 3)),
            Exit::IoRead {
                port: 0x3fd,
                width: AccessWidth::Byte
            }
        );
        // OUT DX, EAX to 0xcf8 (immediate operand bit 6 changes nothing).
        assert_eq!(
            decode(&info(reason::IO, 0xcf8 << 16 | 1 << 6 | 3)),
            Exit::IoWrite {
                port: 0xcf8,
                width: AccessWidth::Word
            }
        );
        // REP OUTSB.
        assert_eq!(
            decode(&info(reason::IO, 0x3f8 << 16 | 1 << 5 | 1 << 4)),
            Exit::IoString {
                port: 0x3f8,
                width: AccessWidth::Byte,
                input: false
            }
        );
        // Size encoding 2 is reserved.
        assert!(matches!(decode(&info(reason::IO, 2)), Exit::Unknown { .. }));
    }

    #[test]
    fn register_carrying_exits() {
        let mut i = info(reason::WRMSR, 0);
        i.rcx = 0xc000_0080;
        i.rax = 0xffff_ffff_0000_0500;
        i.rdx = 0x1;
        assert_eq!(
            decode(&i),
            Exit::MsrWrite {
                msr: 0xc000_0080,
                value: 0x1_0000_0500
            }
        );
        let mut i = info(reason::CPUID, 0);
        i.rax = 0x4000_0000;
        i.rcx = 7;
        assert_eq!(
            decode(&i),
            Exit::Cpuid {
                leaf: 0x4000_0000,
                subleaf: 7
            }
        );
        let mut i = info(reason::EPT_VIOLATION, 0b010);
        i.gpa = 0x1234_5000;
        assert_eq!(
            decode(&i),
            Exit::EptViolation {
                gpa: 0x1234_5000,
                write: true,
                fetch: false
            }
        );
    }

    #[test]
    fn simple_and_failed_exits() {
        assert_eq!(decode(&info(reason::TRIPLE_FAULT, 0)), Exit::TripleFault);
        assert_eq!(decode(&info(reason::VMCALL, 0)), Exit::Hypercall);
        assert_eq!(decode(&info(reason::HLT, 0)), Exit::Halt);
        let failed = ExitInfo {
            reason: ENTRY_FAILURE | u32::from(reason::ENTRY_INVALID_GUEST_STATE),
            ..ExitInfo::default()
        };
        assert_eq!(
            decode(&failed),
            Exit::Unknown {
                syndrome: 0x8000_0021
            }
        );
    }

    #[test]
    fn exits_that_skip_vmcs_reads() {
        for r in [
            reason::CPUID,
            reason::HLT,
            reason::VMCALL,
            reason::IO,
            reason::RDMSR,
            reason::WRMSR,
        ] {
            assert!(is_instruction_exit(r), "{r}");
        }
        // Exits that can interrupt an event's delivery keep the
        // IDT-vectoring check.
        for r in [
            reason::EXCEPTION_NMI,
            reason::EXTERNAL_INTERRUPT,
            reason::TRIPLE_FAULT,
            reason::INTERRUPT_WINDOW,
            reason::EPT_VIOLATION,
            reason::EPT_MISCONFIG,
            reason::PREEMPTION_TIMER,
        ] {
            assert!(!is_instruction_exit(r), "{r}");
        }
        // Every exit decode reads the qualification of reads it.
        for r in [
            reason::IO,
            reason::EPT_VIOLATION,
            reason::EPT_MISCONFIG,
            reason::SIPI,
        ] {
            assert!(uses_qualification(r), "{r}");
        }
        for r in [reason::CPUID, reason::VMCALL, reason::RDMSR, reason::HLT] {
            assert!(!uses_qualification(r), "{r}");
            // Decoding does not depend on it.
            let a = decode(&info(r, 0));
            let b = decode(&info(r, u64::MAX));
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }

    #[test]
    fn in_results_merge_like_the_instruction() {
        let rax = 0x1122_3344_5566_7788;
        assert_eq!(
            merge_in(rax, AccessWidth::Byte, 0x60),
            0x1122_3344_5566_7760
        );
        assert_eq!(
            merge_in(rax, AccessWidth::Half, 0xffff_abcd),
            0x1122_3344_5566_abcd
        );
        assert_eq!(merge_in(rax, AccessWidth::Word, 0xffff_ffff), 0xffff_ffff);
    }
}
