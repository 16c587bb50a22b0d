//! What the firmware's device tree says about the machine the hypervisor
//! boots on: the CPU nodes and how each is started (`enable-method`
//! `"psci"`, or `"spin-table"` with `cpu-release-addr` as the Raspberry Pi
//! firmware does), whether a PSCI node exists, and the memory banks.
//!
//! A small reader of the flattened tree's structure block of its own: QEMU's
//! `raspi4b` turns the nodes of devices it does not model into NOP tokens,
//! which the `fdt` crate (0.1) cannot step over. Bounds-checked, never
//! panics; pure and host-tested with trees built by `vm-fdt`.

use heapless::Vec;
use tessera_config::MAX_CPUS;

/// How a secondary core is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMethod {
    /// PSCI `CPU_ON` through the SMC conduit.
    Psci,
    /// The core spins in firmware, reading the 64-bit `release_addr`; a
    /// non-zero value written there is the address it jumps to.
    SpinTable {
        /// Physical address of the core's release slot.
        release_addr: u64,
    },
    /// The device tree names no method this hypervisor can use.
    Unknown,
}

/// Most memory banks kept from the tree.
pub const MAX_BANKS: usize = 8;

/// The firmware's boot interface and machine, from its device tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareBoot {
    /// A PSCI node with the SMC conduit (the only one usable from EL2).
    pub psci: bool,
    /// Number of CPU nodes under `/cpus`.
    pub cpu_count: usize,
    /// Memory banks (`device_type = "memory"` nodes), `(base, size)`.
    pub memory: Vec<(u64, u64), MAX_BANKS>,
    cpus: Vec<(u64, StartMethod), MAX_CPUS>,
}

/// Why a blob is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeError {
    /// No `0xd00dfeed` magic.
    Magic,
    /// A header field or token points outside the blob.
    Truncated,
    /// An unknown token.
    Token(u32),
}

/// MPIDR affinity fields Aff3 and Aff2..Aff0, as board files give them.
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;
const MAGIC: u32 = 0xd00d_feed;
/// Largest tree accepted.
pub const MAX_TREE: usize = 1 << 21;

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// The properties of one node this reader cares about.
#[derive(Default)]
struct Node<'a> {
    name: &'a [u8],
    device_type: Option<&'a [u8]>,
    reg: Option<&'a [u8]>,
    enable_method: Option<&'a [u8]>,
    release_addr: Option<&'a [u8]>,
    method: Option<&'a [u8]>,
    address_cells: Option<u32>,
    size_cells: Option<u32>,
}

struct Reader<'a> {
    blob: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn u32_at(blob: &[u8], at: usize) -> Result<u32, TreeError> {
        let b = blob.get(at..at + 4).ok_or(TreeError::Truncated)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32(&mut self) -> Result<u32, TreeError> {
        let v = Self::u32_at(self.blob, self.at)?;
        self.at += 4;
        Ok(v)
    }
    fn bytes(&mut self, len: usize) -> Result<&'a [u8], TreeError> {
        let b = self
            .blob
            .get(self.at..self.at + len)
            .ok_or(TreeError::Truncated)?;
        self.at += len.next_multiple_of(4);
        Ok(b)
    }
    fn cstr(&mut self) -> Result<&'a [u8], TreeError> {
        let rest = self.blob.get(self.at..).ok_or(TreeError::Truncated)?;
        let len = rest
            .iter()
            .position(|&c| c == 0)
            .ok_or(TreeError::Truncated)?;
        let s = &rest[..len];
        self.at += (len + 1).next_multiple_of(4);
        Ok(s)
    }
}

/// A NUL-terminated string property's text.
fn text(v: &[u8]) -> &[u8] {
    v.split(|&c| c == 0).next().unwrap_or(v)
}

/// A big-endian value of one or two 32-bit cells.
fn be_cells(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, &b| acc << 8 | u64::from(b))
}

/// The size of the tree at the start of `header` (its first 8 bytes), if
/// it has the magic: how much to read.
pub fn total_size(header: &[u8]) -> Result<usize, TreeError> {
    if Reader::u32_at(header, 0)? != MAGIC {
        return Err(TreeError::Magic);
    }
    Ok(Reader::u32_at(header, 4)? as usize)
}

impl FirmwareBoot {
    /// No device tree: PSCI assumed (what QEMU `virt` and Trusted Firmware
    /// provide), every core started with `CPU_ON`.
    pub fn without_device_tree() -> Self {
        Self {
            psci: true,
            cpu_count: 0,
            memory: Vec::new(),
            cpus: Vec::new(),
        }
    }

    /// Reads the tree in `blob`.
    pub fn parse(blob: &[u8]) -> Result<Self, TreeError> {
        let size = total_size(blob)?;
        let blob = blob.get(..size).ok_or(TreeError::Truncated)?;
        let structs = Reader::u32_at(blob, 8)? as usize;
        let strings = Reader::u32_at(blob, 12)? as usize;
        let name_of = |off: u32| -> &[u8] {
            blob.get(strings + off as usize..)
                .map_or(&[][..], |s| text(s))
        };
        let mut r = Reader { blob, at: structs };
        let mut fw = Self {
            psci: false,
            cpu_count: 0,
            memory: Vec::new(),
            cpus: Vec::new(),
        };
        // The open nodes, root first; only the first three levels matter.
        let mut stack: [Node; 3] = Default::default();
        let mut depth = 0usize;
        let mut psci_method = None;
        loop {
            match r.u32()? {
                BEGIN_NODE => {
                    let name = r.cstr()?;
                    if depth < stack.len() {
                        stack[depth] = Node {
                            name,
                            ..Node::default()
                        };
                    }
                    depth += 1;
                }
                PROP => {
                    let len = r.u32()? as usize;
                    let name = name_of(r.u32()?);
                    let value = r.bytes(len)?;
                    let Some(node) = depth.checked_sub(1).and_then(|d| stack.get_mut(d)) else {
                        continue;
                    };
                    let cell = || (value.len() == 4).then(|| be_cells(value) as u32);
                    match name {
                        b"device_type" => node.device_type = Some(text(value)),
                        b"reg" => node.reg = Some(value),
                        b"enable-method" => node.enable_method = Some(text(value)),
                        b"cpu-release-addr" => node.release_addr = Some(value),
                        b"method" => node.method = Some(text(value)),
                        b"#address-cells" => node.address_cells = cell(),
                        b"#size-cells" => node.size_cells = cell(),
                        _ => {}
                    }
                }
                END_NODE => {
                    depth = depth.checked_sub(1).ok_or(TreeError::Token(END_NODE))?;
                    fw.close(&stack, depth, &mut psci_method);
                }
                NOP => {}
                END => break,
                t => return Err(TreeError::Token(t)),
            }
        }
        fw.psci = psci_method == Some(&b"smc"[..]);
        // CPUs without enable-method use PSCI when the firmware has it.
        if fw.psci {
            for (_, m) in fw.cpus.iter_mut() {
                if *m == StartMethod::Unknown {
                    *m = StartMethod::Psci;
                }
            }
        }
        Ok(fw)
    }

    /// A node at `depth` (0 = root) ends: keep what it says.
    fn close<'a>(&mut self, stack: &[Node<'a>; 3], depth: usize, psci: &mut Option<&'a [u8]>) {
        match depth {
            1 if stack[1].name == b"psci" => *psci = stack[1].method,
            1 if stack[1].device_type == Some(&b"memory"[..]) => {
                let (ac, sc) = (
                    stack[0].address_cells.unwrap_or(2) as usize,
                    stack[0].size_cells.unwrap_or(1) as usize,
                );
                let entry = 4 * (ac + sc);
                if let (Some(reg), true) = (stack[1].reg, entry > 0) {
                    for e in reg.chunks_exact(entry) {
                        let (base, size) = e.split_at(4 * ac);
                        if size.iter().any(|&b| b != 0) {
                            let _ = self.memory.push((be_cells(base), be_cells(size)));
                        }
                    }
                }
            }
            2 if stack[1].name == b"cpus"
                && stack[2].name.split(|&c| c == b'@').next() == Some(b"cpu") =>
            {
                self.cpu_count += 1;
                let cpu = &stack[2];
                let Some(reg) = cpu.reg else { return };
                let mpidr = be_cells(reg) & MPIDR_AFF_MASK;
                let method = match cpu.enable_method {
                    Some(b"spin-table") => match cpu.release_addr {
                        Some(a) if matches!(a.len(), 4 | 8) => StartMethod::SpinTable {
                            release_addr: be_cells(a),
                        },
                        _ => StartMethod::Unknown,
                    },
                    Some(b"psci") => StartMethod::Psci,
                    _ => StartMethod::Unknown,
                };
                // More CPU nodes than MAX_CPUS: the board cannot use them.
                let _ = self.cpus.push((mpidr, method));
            }
            _ => {}
        }
    }

    /// How to start the core with affinity `mpidr`.
    pub fn start_method(&self, mpidr: u64) -> StartMethod {
        if self.cpus.is_empty() && self.psci {
            return StartMethod::Psci;
        }
        self.cpus
            .iter()
            .find(|(m, _)| *m == mpidr)
            .map_or(StartMethod::Unknown, |&(_, method)| method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// A tree like the Raspberry Pi 4's (`spin-table`, no PSCI node) or like
    /// QEMU virt's (`psci`, a PSCI node with the SMC conduit), with a node
    /// `rng` between the memory and the CPUs.
    fn tree(spin_table: bool, psci_method: Option<&str>) -> std::vec::Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        if let Some(method) = psci_method {
            let p = w.begin_node("psci").unwrap();
            w.property_string("compatible", "arm,psci-1.0").unwrap();
            w.property_string("method", method).unwrap();
            w.end_node(p).unwrap();
        }
        // reg before device_type, as QEMU writes it; an empty bank skipped.
        let m = w.begin_node("memory@0").unwrap();
        w.property_array_u32("reg", &[0, 0, 0x3c00_0000, 1, 0, 0])
            .unwrap();
        w.property_string("device_type", "memory").unwrap();
        w.end_node(m).unwrap();
        let rng = w.begin_node("rng").unwrap();
        w.property_u32("x", 1).unwrap();
        w.end_node(rng).unwrap();
        let cpus = w.begin_node("cpus").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        // The Pi's /cpus carries a 32-bit method for the whole cluster.
        w.property_string("enable-method", "brcm,bcm2836-smp")
            .unwrap();
        for i in 0..4u32 {
            let c = w.begin_node(&format!("cpu@{i}")).unwrap();
            w.property_string("device_type", "cpu").unwrap();
            w.property_u32("reg", i).unwrap();
            if spin_table {
                w.property_string("enable-method", "spin-table").unwrap();
                w.property_u64("cpu-release-addr", 0xd8 + 8 * u64::from(i))
                    .unwrap();
            } else if i != 3 {
                w.property_string("enable-method", "psci").unwrap();
            }
            w.end_node(c).unwrap();
        }
        w.end_node(cpus).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn raspberry_pi_cores_wait_on_the_spin_table() {
        let fw = FirmwareBoot::parse(&tree(true, None)).unwrap();
        assert!(!fw.psci, "no PSCI firmware on the Pi");
        assert_eq!(fw.cpu_count, 4);
        assert_eq!(&fw.memory[..], &[(0, 0x3c00_0000)]);
        assert_eq!(
            fw.start_method(1),
            StartMethod::SpinTable { release_addr: 0xe0 }
        );
        assert_eq!(
            fw.start_method(3),
            StartMethod::SpinTable { release_addr: 0xf0 }
        );
        assert_eq!(fw.start_method(4), StartMethod::Unknown, "no such CPU");
    }

    #[test]
    fn nodes_turned_into_nops_are_stepped_over() {
        // QEMU raspi4b NOPs the nodes of devices it does not model.
        let mut blob = tree(true, None);
        let begin = [0, 0, 0, 1, b'r', b'n', b'g', 0];
        let at = blob.windows(8).position(|w| w == begin).unwrap();
        // BEGIN_NODE "rng", PROP len nameoff value, END_NODE: 7 words.
        for word in blob[at..at + 28].chunks_exact_mut(4) {
            word.copy_from_slice(&NOP.to_be_bytes());
        }
        let fw = FirmwareBoot::parse(&blob).unwrap();
        assert_eq!(fw.cpu_count, 4);
        assert_eq!(
            fw.start_method(2),
            StartMethod::SpinTable { release_addr: 0xe8 }
        );
    }

    #[test]
    fn psci_boards_use_cpu_on() {
        let fw = FirmwareBoot::parse(&tree(false, Some("smc"))).unwrap();
        assert!(fw.psci);
        assert_eq!(fw.start_method(1), StartMethod::Psci);
        // A CPU without enable-method uses PSCI when the firmware has it.
        assert_eq!(fw.start_method(3), StartMethod::Psci);
        // The HVC conduit would call ourselves at EL2.
        let fw = FirmwareBoot::parse(&tree(false, Some("hvc"))).unwrap();
        assert!(!fw.psci);
        assert_eq!(fw.start_method(3), StartMethod::Unknown);
        assert_eq!(fw.start_method(1), StartMethod::Psci);
    }

    #[test]
    fn without_a_tree_psci_is_assumed() {
        let fw = FirmwareBoot::without_device_tree();
        assert!(fw.psci);
        assert_eq!(fw.start_method(2), StartMethod::Psci);
    }

    #[test]
    fn bad_blobs_are_errors_not_panics() {
        let blob = tree(true, None);
        assert_eq!(FirmwareBoot::parse(&[0; 64]), Err(TreeError::Magic));
        assert_eq!(
            FirmwareBoot::parse(&blob[..blob.len() - 8]),
            Err(TreeError::Truncated)
        );
        for cut in (40..blob.len()).step_by(7) {
            let mut b = blob[..cut].to_vec();
            b[4..8].copy_from_slice(&(cut as u32).to_be_bytes());
            let _ = FirmwareBoot::parse(&b);
        }
        let mut b = blob.clone();
        let structs = Reader::u32_at(&b, 8).unwrap() as usize;
        b[structs..structs + 4].copy_from_slice(&7u32.to_be_bytes());
        assert_eq!(FirmwareBoot::parse(&b), Err(TreeError::Token(7)));
    }

    #[test]
    fn release_addresses_of_one_or_two_cells() {
        assert_eq!(be_cells(&[0, 0, 0, 0xd8]), 0xd8);
        assert_eq!(be_cells(&[0, 0, 0, 1, 0, 0, 0, 0xe0]), 0x1_0000_00e0);
    }
}
