//! What x86_64 boards and VMs add to the shared config types: the
//! architecture of a board, and I/O port ranges (passed through, or
//! emulated devices at a port), and the I/O APIC. Everything else — RAM, CPUs, `[base]`,
//! `[kernel]`, `memory_regions`, `[devices]` — uses the shared types.

/// Instruction-set architecture of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// AArch64 at EL2 (the default when a board file names none).
    Aarch64,
    /// x86_64 in VMX root operation.
    X86_64,
}

impl Arch {
    /// The name used in board files and `ARCH=`.
    pub const fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
        }
    }
}

/// An x86 board's I/O APIC (`[ioapic]` in the board file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApicDesc {
    /// Physical base of its registers (IOREGSEL; IOWIN at +0x10), usually
    /// 0xfec0_0000.
    pub base: u64,
    /// Number of inputs (redirection entries): GSIs `0..pins` (24 on PCs).
    pub pins: u32,
}

/// A range of x86 I/O ports `[base, base + size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub base: u16,
    /// Number of ports (at least 1).
    pub size: u16,
}

impl PortRange {
    /// One past the last port (up to 0x1_0000).
    pub const fn end(&self) -> u32 {
        self.base as u32 + self.size as u32
    }
    /// Whether `port` lies inside the range.
    pub const fn contains(&self, port: u16) -> bool {
        port >= self.base && ((port - self.base) as u32) < self.size as u32
    }
    /// Whether the two ranges share a port.
    pub const fn overlaps(&self, other: &PortRange) -> bool {
        (self.base as u32) < other.end() && (other.base as u32) < self.end()
    }
}

/// Kinds of emulated port-I/O device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmuPortKind {
    /// A 16550 UART model (8 ports) whose output goes to the hypervisor
    /// console, tagged with the VM name.
    Uart16550,
}

impl EmuPortKind {
    /// Ports the device decodes.
    pub const fn ports(self) -> u16 {
        match self {
            EmuPortKind::Uart16550 => 8,
        }
    }
}

/// An emulated device in a VM's I/O port space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmuPort {
    /// Which model.
    pub kind: EmuPortKind,
    /// First port (e.g. 0x3f8 for COM1).
    pub port: u16,
}

impl EmuPort {
    /// The ports the device occupies.
    pub const fn range(&self) -> PortRange {
        PortRange {
            base: self.port,
            size: self.kind.ports(),
        }
    }
}
