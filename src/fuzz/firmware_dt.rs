//! `firmware_dt`: the firmware device-tree reader (`platform::firmware`,
//! our own since the `fdt` crate panics on the nodes QEMU `raspi4b` blanks
//! out) reads whatever firmware hands it without panicking, and reads a
//! well-formed tree right: a generated tree (1-8 CPUs, spin table or PSCI,
//! 0-10 memory banks, with and without a PSCI node) parses back to what
//! was written; the same tree with bytes overwritten, cut short or with a
//! lying header never panics, and whatever it yields stays within bounds.

use crate::platform::firmware::{FirmwareBoot, StartMethod, MAX_BANKS};
use tessera_fuzz::proptest::collection::vec;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};
use vm_fdt::FdtWriter;

/// What a generated tree says.
#[derive(Debug, Clone)]
struct Machine {
    cpus: u32,
    spin_table: bool,
    psci_node: bool,
    release_base: u64,
    banks: Vec<(u64, u64)>,
}

fn machine() -> impl Strategy<Value = Machine> {
    (
        1..=8u32,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
        vec((any::<u64>(), any::<u32>()), 0..=10),
    )
        .prop_map(
            |(cpus, spin_table, psci_node, release_base, banks)| Machine {
                cpus,
                spin_table,
                psci_node,
                release_base: release_base & !7,
                banks: banks.into_iter().map(|(b, s)| (b, u64::from(s))).collect(),
            },
        )
}

fn tree(m: &Machine) -> Vec<u8> {
    let mut w = FdtWriter::new().expect("writer");
    let root = w.begin_node("").expect("root");
    w.property_u32("#address-cells", 2).expect("cells");
    w.property_u32("#size-cells", 2).expect("cells");
    if m.psci_node {
        let p = w.begin_node("psci").expect("psci");
        w.property_string("compatible", "arm,psci-1.0")
            .expect("compatible");
        w.property_string("method", "smc").expect("method");
        w.end_node(p).expect("end");
    }
    if !m.banks.is_empty() {
        let mem = w.begin_node("memory@0").expect("memory");
        w.property_string("device_type", "memory").expect("type");
        let reg: Vec<u64> = m.banks.iter().flat_map(|&(b, s)| [b, s]).collect();
        w.property_array_u64("reg", &reg).expect("reg");
        w.end_node(mem).expect("end");
    }
    let cpus = w.begin_node("cpus").expect("cpus");
    w.property_u32("#address-cells", 1).expect("cells");
    w.property_u32("#size-cells", 0).expect("cells");
    for i in 0..m.cpus {
        let c = w.begin_node(&format!("cpu@{i}")).expect("cpu");
        w.property_string("device_type", "cpu").expect("type");
        w.property_u32("reg", i).expect("reg");
        if m.spin_table {
            w.property_string("enable-method", "spin-table")
                .expect("method");
            w.property_u64("cpu-release-addr", release_addr(m, i))
                .expect("release");
        } else {
            w.property_string("enable-method", "psci").expect("method");
        }
        w.end_node(c).expect("end");
    }
    w.end_node(cpus).expect("end");
    w.end_node(root).expect("end");
    w.finish().expect("finish")
}

fn release_addr(m: &Machine, cpu: u32) -> u64 {
    m.release_base.wrapping_add(8 * u64::from(cpu))
}

/// How a generated tree is damaged before it is read.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// Bytes overwritten at (offset modulo the length, value).
    Bytes(Vec<(usize, u8)>),
    /// Cut to this fraction (per mille) of its length.
    Cut(u16),
    /// A header word (index 0..10) replaced.
    Header(usize, u32),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        vec((any::<usize>(), any::<u8>()), 1..=8).prop_map(Damage::Bytes),
        (0..1000u16).prop_map(Damage::Cut),
        (0..10usize, any::<u32>()).prop_map(|(i, v)| Damage::Header(i, v)),
    ]
}

#[test]
fn fuzz_firmware_dt() {
    run_classified("firmware_dt", (machine(), damage()), |(m, d)| {
        let mut blob = tree(&m);
        let intact = matches!(d, Damage::None);
        match d {
            Damage::None => {}
            Damage::Bytes(edits) => {
                let len = blob.len();
                for (at, v) in edits {
                    blob[at % len] = v;
                }
            }
            Damage::Cut(per_mille) => blob.truncate(blob.len() * usize::from(per_mille) / 1000),
            Damage::Header(word, v) => {
                blob[word * 4..word * 4 + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        let parsed = FirmwareBoot::parse(&blob);
        if !intact {
            // Any outcome but a panic; what is read stays within bounds.
            return match parsed {
                Ok(fw) => {
                    check(fw.memory.len() <= MAX_BANKS, || {
                        format!("{} banks", fw.memory.len())
                    })?;
                    Ok(Some("damaged, read"))
                }
                Err(_) => Ok(Some("damaged, refused")),
            };
        }
        let fw = parsed.map_err(|e| TestCaseError::fail(format!("{m:?}: {e:?}")))?;
        check(fw.cpu_count == m.cpus as usize, || {
            format!("{m:?}: {} CPUs", fw.cpu_count)
        })?;
        check(fw.psci == m.psci_node, || {
            format!("{m:?}: psci {}", fw.psci)
        })?;
        let want: Vec<(u64, u64)> = m
            .banks
            .iter()
            .copied()
            .filter(|&(_, s)| s != 0)
            .take(MAX_BANKS)
            .collect();
        check(fw.memory.as_slice() == want.as_slice(), || {
            format!("{m:?}: memory {:x?}", fw.memory)
        })?;
        for i in 0..m.cpus {
            let got = fw.start_method(u64::from(i));
            let ok = if m.spin_table {
                got == StartMethod::SpinTable {
                    release_addr: release_addr(&m, i),
                }
            } else {
                got == StartMethod::Psci || (!m.psci_node && got == StartMethod::Unknown)
            };
            check(ok, || format!("{m:?}: CPU {i} starts by {got:?}"))?;
        }
        Ok(Some("well-formed"))
    });
}
