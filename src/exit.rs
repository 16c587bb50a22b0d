//! Arch-neutral VM exits: what a trap means, independent of how the
//! architecture reported it. The arch back-end decodes its syndrome into an
//! [`Exit`]; [`crate::vcpu`] dispatches it to a device bus or a VM service.

/// Width of a guest memory or port access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessWidth {
    /// 1 byte.
    Byte,
    /// 2 bytes.
    Half,
    /// 4 bytes.
    Word,
    /// 8 bytes.
    Double,
}

impl AccessWidth {
    /// Width from a log2 byte size (0..=3).
    pub const fn from_log2(log2: u32) -> Self {
        match log2 & 3 {
            0 => Self::Byte,
            1 => Self::Half,
            2 => Self::Word,
            _ => Self::Double,
        }
    }

    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Byte => 1,
            Self::Half => 2,
            Self::Word => 4,
            Self::Double => 8,
        }
    }

    /// Keeps only the bits an access of this width carries. Branch-free
    /// (every emulated MMIO write): 8 << width is 8, 16, 32 or 64 bits.
    #[inline(always)]
    pub const fn truncate(self, value: u64) -> u64 {
        value & (u64::MAX >> (64 - (8u32 << self as u32)))
    }

    /// The register value of a load of this width: sign- or zero-extended,
    /// and limited to 32 bits when the destination is a W register.
    /// Branch-free: it is on every emulated MMIO read.
    #[inline(always)]
    pub const fn extend_load(self, raw: u64, sign_extend: bool, reg_is_64: bool) -> u64 {
        let shift = 64 - (8u32 << self as u32);
        let up = raw << shift;
        let value = if sign_extend {
            ((up as i64) >> shift) as u64
        } else {
            up >> shift
        };
        value & if reg_is_64 { u64::MAX } else { 0xffff_ffff }
    }

    /// Sign-extends a value of this width to 64 bits.
    pub const fn sign_extend(self, value: u64) -> u64 {
        let shift = 64 - self.bytes() * 8;
        (((value << shift) as i64) >> shift) as u64
    }
}

/// Kinds of exit, for per-VM statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitKind {
    /// Emulated MMIO read.
    MmioRead,
    /// Emulated MMIO write.
    MmioWrite,
    /// Trapped system-register access.
    SysReg,
    /// Hypervisor call (Tessera services).
    Hypercall,
    /// Power-state call (PSCI on Arm).
    Power,
    /// Idle instruction (WFI).
    Halt,
    /// Physical interrupt taken while the guest ran.
    Irq,
    /// Exit nobody handled; the VM got the configured outcome.
    Unhandled,
    /// Port I/O instruction (x86 IN/OUT).
    PortIo,
}

impl ExitKind {
    /// Number of kinds.
    pub const COUNT: usize = 9;
    /// All kinds, in summary order.
    pub const ALL: [ExitKind; Self::COUNT] = [
        Self::MmioRead,
        Self::MmioWrite,
        Self::SysReg,
        Self::Hypercall,
        Self::Power,
        Self::Halt,
        Self::Irq,
        Self::Unhandled,
        Self::PortIo,
    ];

    /// Short name used in the exit summary.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MmioRead => "mmio_read",
            Self::MmioWrite => "mmio_write",
            Self::SysReg => "sysreg",
            Self::Hypercall => "hypercall",
            Self::Power => "power",
            Self::Halt => "halt",
            Self::Irq => "irq",
            Self::Unhandled => "unhandled",
            Self::PortIo => "port_io",
        }
    }
}

/// A trap, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Load from guest-physical `addr` that no RAM backs.
    MmioRead {
        /// Guest-physical address.
        addr: u64,
        /// Access width.
        width: AccessWidth,
        /// Destination general-purpose register (31 = zero register).
        reg: u8,
        /// Sign-extend the loaded value.
        sign_extend: bool,
        /// Destination is a 64-bit (X) register; otherwise W (upper half zeroed).
        reg_is_64: bool,
    },
    /// Store to guest-physical `addr` that no RAM backs.
    MmioWrite {
        /// Guest-physical address.
        addr: u64,
        /// Access width.
        width: AccessWidth,
        /// Source general-purpose register (31 = zero register).
        reg: u8,
    },
    /// Trapped system-register read into `reg`.
    SysRegRead {
        /// Arch encoding of the register.
        sysreg: u32,
        /// Destination register.
        reg: u8,
    },
    /// Trapped system-register write from `reg`.
    SysRegWrite {
        /// Arch encoding of the register.
        sysreg: u32,
        /// Source register.
        reg: u8,
    },
    /// Hypervisor or firmware call; function id and arguments are in the
    /// argument registers.
    Call {
        /// Came through the secure-monitor conduit (SMC) rather than HVC.
        smc: bool,
    },
    /// Guest idles until an interrupt (WFI).
    Halt,
    /// Guest waits for an event (WFE).
    WaitEvent,
    /// Stage-2 fault that is not an access to emulate (instruction fetch
    /// outside RAM, a guest page-table walk outside RAM, an access with no
    /// usable syndrome...).
    GuestFault {
        /// Guest-physical address, when known.
        addr: u64,
    },
    /// Anything else the architecture reported.
    Unknown {
        /// Raw syndrome, for the log.
        syndrome: u64,
    },
    /// x86 `IN`: read `width` bytes from I/O `port` into AL/AX/EAX (the
    /// rest of RAX is kept for 1- and 2-byte reads, zeroed above 32 bits
    /// for 4-byte reads, as the instruction does).
    IoRead {
        /// I/O port.
        port: u16,
        /// 1, 2 or 4 bytes.
        width: AccessWidth,
    },
    /// x86 `OUT`: write the low `width` bytes of RAX to I/O `port`.
    IoWrite {
        /// I/O port.
        port: u16,
        /// 1, 2 or 4 bytes.
        width: AccessWidth,
    },
    /// String or `REP` port I/O (`INS`/`OUTS`): has a defined path (it is
    /// reported, and handled per the VM's policy), but no emulation yet.
    IoString {
        /// I/O port.
        port: u16,
        /// Element width.
        width: AccessWidth,
        /// `INS` (into memory) rather than `OUTS`.
        input: bool,
    },
    /// x86 `CPUID` with leaf EAX and subleaf ECX; results go to EAX..EDX.
    Cpuid {
        /// EAX on entry.
        leaf: u32,
        /// ECX on entry.
        subleaf: u32,
    },
    /// x86 `RDMSR` of MSR ECX into EDX:EAX.
    MsrRead {
        /// MSR index.
        msr: u32,
    },
    /// x86 `WRMSR` of EDX:EAX into MSR ECX.
    MsrWrite {
        /// MSR index.
        msr: u32,
        /// EDX:EAX.
        value: u64,
    },
    /// EPT violation: an access to a guest-physical address the VM has no
    /// RAM at. Emulated MMIO must decode the instruction (it may be a
    /// string move or read-modify-write with no single register), so the
    /// exit carries only what the hardware told.
    EptViolation {
        /// Guest-physical address.
        gpa: u64,
        /// The access was a write.
        write: bool,
        /// The access was an instruction fetch.
        fetch: bool,
    },
    /// EPT misconfiguration: the hypervisor's tables are wrong (never the
    /// guest's doing).
    EptMisconfig {
        /// Guest-physical address.
        gpa: u64,
    },
    /// A physical interrupt arrived while the guest ran.
    ExternalInterrupt {
        /// Vector, when the CPU acknowledged it on exit.
        vector: Option<u8>,
    },
    /// The guest can take an interrupt now (interrupt-window exiting).
    InterruptWindow,
    /// The guest took an exception while delivering one while delivering
    /// one: on real hardware the machine would reset.
    TripleFault,
    /// INIT signal to a vCPU.
    Init,
    /// Start-up IPI to a vCPU waiting for SIPI: start at `vector << 12`.
    Sipi {
        /// SIPI vector.
        vector: u8,
    },
    /// x86 `VMCALL`: a hypercall with its number in RAX (the Tessera ids of
    /// `tessera-abi`, as on Arm) and arguments in RBX, RCX, RDX, RSI.
    Hypercall,
}

/// Register name for logs: `x5`, or `xzr` for register 31.
struct Gpr(u8);

impl core::fmt::Display for Gpr {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        if self.0 >= 31 {
            f.write_str("xzr")
        } else {
            write!(f, "x{}", self.0)
        }
    }
}

/// One line a person can read in the hypervisor log.
impl core::fmt::Display for Exit {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match *self {
            Exit::MmioRead {
                addr, width, reg, ..
            } => {
                write!(
                    f,
                    "{}-byte MMIO read at {:#x} into {}",
                    width.bytes(),
                    addr,
                    Gpr(reg)
                )
            }
            Exit::MmioWrite { addr, width, reg } => {
                write!(
                    f,
                    "{}-byte MMIO write at {:#x} from {}",
                    width.bytes(),
                    addr,
                    Gpr(reg)
                )
            }
            Exit::SysRegRead { sysreg, reg } => {
                write!(f, "system register {:#x} read into {}", sysreg, Gpr(reg))
            }
            Exit::SysRegWrite { sysreg, reg } => {
                write!(f, "system register {:#x} write from {}", sysreg, Gpr(reg))
            }
            Exit::Call { smc } => f.write_str(if smc { "SMC call" } else { "HVC call" }),
            Exit::Halt => f.write_str("WFI"),
            Exit::WaitEvent => f.write_str("WFE"),
            Exit::GuestFault { addr } => write!(f, "stage-2 fault at {:#x}", addr),
            Exit::Unknown { syndrome } => write!(f, "unknown trap (syndrome {:#x})", syndrome),
            Exit::IoRead { port, width } => {
                write!(f, "{}-byte port read at {:#x}", width.bytes(), port)
            }
            Exit::IoWrite { port, width } => {
                write!(f, "{}-byte port write at {:#x}", width.bytes(), port)
            }
            Exit::IoString { port, width, input } => write!(
                f,
                "{}-byte string port {} at {:#x}",
                width.bytes(),
                if input { "input" } else { "output" },
                port
            ),
            Exit::Cpuid { leaf, subleaf } => write!(f, "CPUID {:#x}.{:#x}", leaf, subleaf),
            Exit::MsrRead { msr } => write!(f, "RDMSR {:#x}", msr),
            Exit::MsrWrite { msr, value } => write!(f, "WRMSR {:#x} <- {:#x}", msr, value),
            Exit::EptViolation { gpa, write, fetch } => {
                let what = match (fetch, write) {
                    (true, _) => "fetch",
                    (false, true) => "write",
                    (false, false) => "read",
                };
                write!(f, "EPT violation ({what}) at {:#x}", gpa)
            }
            Exit::EptMisconfig { gpa } => write!(f, "EPT misconfiguration at {:#x}", gpa),
            Exit::ExternalInterrupt { vector: Some(v) } => {
                write!(f, "external interrupt (vector {v})")
            }
            Exit::ExternalInterrupt { vector: None } => f.write_str("external interrupt"),
            Exit::InterruptWindow => f.write_str("interrupt window"),
            Exit::TripleFault => f.write_str("triple fault"),
            Exit::Init => f.write_str("INIT"),
            Exit::Sipi { vector } => write!(f, "SIPI (vector {:#x})", vector),
            Exit::Hypercall => f.write_str("VMCALL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn widths_truncate_and_sign_extend() {
        assert_eq!(AccessWidth::Byte.truncate(0x1ff), 0xff);
        assert_eq!(AccessWidth::Half.sign_extend(0x8000), 0xffff_ffff_ffff_8000);
        assert_eq!(AccessWidth::Word.sign_extend(0x7fff_ffff), 0x7fff_ffff);
        assert_eq!(AccessWidth::Double.truncate(u64::MAX), u64::MAX);
        assert_eq!(AccessWidth::from_log2(3), AccessWidth::Double);
        assert_eq!(
            AccessWidth::Byte.extend_load(0x80, true, false),
            0xffff_ff80
        );
        assert_eq!(AccessWidth::Byte.extend_load(0x180, false, true), 0x80);
    }

    #[test]
    fn branch_free_extend_load_matches_its_definition() {
        let values = [
            0,
            1,
            0x7f,
            0x80,
            0xff,
            0x8000,
            0xffff_ffff,
            0x8000_0000_0000_0000,
            u64::MAX,
            0x1234_5678_9abc_def0,
        ];
        for log2 in 0..4 {
            let w = AccessWidth::from_log2(log2);
            for &raw in &values {
                for sign in [false, true] {
                    for is64 in [false, true] {
                        let v = if sign {
                            w.sign_extend(raw)
                        } else {
                            w.truncate(raw)
                        };
                        let want = if is64 { v } else { v & 0xffff_ffff };
                        assert_eq!(
                            w.extend_load(raw, sign, is64),
                            want,
                            "{w:?} {raw:#x} {sign} {is64}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn exits_read_well_in_logs() {
        let read = Exit::MmioRead {
            addr: 0x4200_0000,
            width: AccessWidth::Word,
            reg: 10,
            sign_extend: false,
            reg_is_64: false,
        };
        assert_eq!(format!("{read}"), "4-byte MMIO read at 0x42000000 into x10");
        let write = Exit::MmioWrite {
            addr: 0x900_0000,
            width: AccessWidth::Byte,
            reg: 31,
        };
        assert_eq!(
            format!("{write}"),
            "1-byte MMIO write at 0x9000000 from xzr"
        );
    }

    #[test]
    fn x86_exits_read_well_in_logs() {
        let cases = [
            (
                Exit::IoRead {
                    port: 0x3fd,
                    width: AccessWidth::Byte,
                },
                "1-byte port read at 0x3fd",
            ),
            (
                Exit::IoString {
                    port: 0x3f8,
                    width: AccessWidth::Byte,
                    input: false,
                },
                "1-byte string port output at 0x3f8",
            ),
            (
                Exit::Cpuid {
                    leaf: 0x4000_0000,
                    subleaf: 0,
                },
                "CPUID 0x40000000.0x0",
            ),
            (
                Exit::EptViolation {
                    gpa: 0xfee0_0000,
                    write: true,
                    fetch: false,
                },
                "EPT violation (write) at 0xfee00000",
            ),
            (Exit::TripleFault, "triple fault"),
            (Exit::Hypercall, "VMCALL"),
        ];
        for (exit, text) in cases {
            assert_eq!(format!("{exit}"), text);
        }
    }
}
