//! `stage2_map_walk`: arbitrary sequences of map requests never panic,
//! fail exactly when they must, and every walk afterwards agrees with what
//! was mapped: each mapped page translates to its PA and kind, no block
//! reaches beyond the request that made it, nothing else is mapped, and a
//! refused request never changes an existing mapping.

use crate::arch::aarch64::stage2::{
    MapError, MemKind, Stage2, Table, TableAllocator, ENTRIES, IPA_BITS, PAGE_SIZE, PA_BITS,
};
use alloc::boxed::Box;
use alloc::vec::Vec;
use tessera_fuzz::proptest::prelude::*;
use tessera_fuzz::{check, run_classified};

const MIB2: u64 = 0x20_0000;
const GIB: u64 = 0x4000_0000;
const IPA_END: u64 = 1 << IPA_BITS;

/// Tables in host memory, at fake physical addresses one page apart,
/// freed when the allocator is dropped; `limit` tables at most.
struct HostTables {
    tables: Vec<*mut Table>,
    limit: usize,
}

impl HostTables {
    fn new(limit: usize) -> Self {
        Self {
            tables: Vec::new(),
            limit,
        }
    }
}

impl TableAllocator for HostTables {
    fn alloc_table(&mut self) -> Option<(u64, &'static mut Table)> {
        if self.tables.len() == self.limit {
            return None;
        }
        self.tables.push(Box::into_raw(Box::new([0; ENTRIES])));
        let pa = self.tables.len() as u64 * PAGE_SIZE;
        Some((pa, self.table_at(pa)))
    }

    fn table_at(&mut self, pa: u64) -> &'static mut Table {
        // SAFETY: `pa` came from `alloc_table`, so it names a live box that
        // is freed only when `self` drops, after the builder is done; the
        // builder holds one table reference at a time.
        unsafe { &mut *self.tables[(pa / PAGE_SIZE - 1) as usize] }
    }
}

impl Drop for HostTables {
    fn drop(&mut self) {
        for t in self.tables.drain(..) {
            // SAFETY: each pointer came from `Box::into_raw` and is freed once.
            drop(unsafe { Box::from_raw(t) });
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Request {
    ipa: u64,
    pa: u64,
    size: u64,
    kind: MemKind,
}

impl Request {
    fn contains(&self, ipa: u64) -> bool {
        ipa >= self.ipa && ipa - self.ipa < self.size
    }
    fn overlaps(&self, o: &Request) -> bool {
        self.ipa < o.ipa.saturating_add(o.size) && o.ipa < self.ipa.saturating_add(self.size)
    }
}

/// A request. `ipa` and `pa` are congruent modulo a block size (4 KiB,
/// 2 MiB or 1 GiB) so a size of up to 512 units of it maps with at most a
/// few thousand descriptors; addresses cluster so requests often collide.
/// Some requests are misaligned, out of range or wrap around.
fn request() -> impl Strategy<Value = Request> {
    let unit = prop_oneof![Just(PAGE_SIZE), Just(MIB2), Just(GIB)];
    let kind = || {
        prop_oneof![
            Just(MemKind::Normal),
            Just(MemKind::Device),
            Just(MemKind::NormalReadOnly)
        ]
    };
    let aligned = (
        unit,
        0u64..16,
        0u64..IPA_END / GIB,
        0u64..512,
        prop_oneof![4 => 0u64..1 << 10, 1 => 0u64..1 << 36],
        1u64..=512,
        0u64..512,
        kind(),
    )
        .prop_map(|(unit, near, far, pages, pa_units, units, tail, kind)| {
            // Start near a 1 GiB boundary (often the same few) or anywhere.
            let base = if near < 12 { near * GIB / 4 } else { far * GIB };
            let ipa = base + pages * PAGE_SIZE;
            let pa = (pa_units.wrapping_mul(unit) & ((1 << PA_BITS) - 1)) | (ipa & (unit - 1));
            let size = if unit == PAGE_SIZE {
                units * PAGE_SIZE
            } else {
                units * unit + tail * PAGE_SIZE
            };
            Request {
                ipa,
                pa: pa & !(PAGE_SIZE - 1),
                size,
                kind,
            }
        });
    let odd = (
        any::<u64>(),
        any::<u64>(),
        prop_oneof![any::<u64>(), 1u64..0x10_0000],
        kind(),
    )
        .prop_map(|(ipa, pa, size, kind)| Request {
            ipa,
            pa,
            size,
            kind,
        });
    let edge = (0u64..64, 1u64..64, kind()).prop_map(|(back, pages, kind)| {
        let ipa = IPA_END - back * PAGE_SIZE;
        Request {
            ipa,
            pa: ipa,
            size: pages * PAGE_SIZE,
            kind,
        }
    });
    // Physical ranges at or past the output-address limit.
    let high_pa =
        (0u64..1 << 20, 0u64..64, 1u64..64, kind()).prop_map(|(ipa_page, back, pages, kind)| {
            let pa = (1 << PA_BITS) - back * PAGE_SIZE;
            Request {
                ipa: ipa_page * PAGE_SIZE,
                pa,
                size: pages * PAGE_SIZE,
                kind,
            }
        });
    prop_oneof![8 => aligned, 1 => odd, 1 => edge, 1 => high_pa]
}

#[test]
fn fuzz_stage2_map_walk() {
    let input = (
        prop::collection::vec(request(), 1..8),
        prop_oneof![3 => Just(usize::MAX), 1 => 1usize..6],
        prop::collection::vec(any::<u64>(), 8),
    );
    run_classified("stage2_map_walk", input, |(requests, limit, probes)| {
        let mut alloc = HostTables::new(limit);
        let Ok(mut s2) = Stage2::new(&mut alloc) else {
            return check(limit == 0, || "no root table".into()).map(|()| None);
        };
        // `done`: mapped for sure. `partial`: refused part-way, so a prefix
        // of it may be mapped.
        let (mut done, mut partial): (Vec<Request>, Vec<Request>) = (Vec::new(), Vec::new());
        for r in &requests {
            let misaligned = (r.ipa | r.pa | r.size) & (PAGE_SIZE - 1) != 0;
            let out_of_range = r.ipa.checked_add(r.size).is_none_or(|end| end > IPA_END)
                || r.pa
                    .checked_add(r.size)
                    .is_none_or(|end| end > 1 << PA_BITS);
            let expected_ok = !misaligned && !out_of_range && !done.iter().any(|d| d.overlaps(r));
            let blocked = !misaligned
                && !out_of_range
                && partial
                    .iter()
                    .any(|p| p.overlaps(r) && mapped_any(&s2, &mut alloc, p, r));
            let result = s2.map(&mut alloc, r.ipa, r.pa, r.size, r.kind);
            match result {
                Ok(()) => {
                    check(expected_ok && !blocked, || {
                        format!("{r:x?} was accepted over {done:x?}")
                    })?;
                    done.push(*r);
                }
                Err(MapError::Misaligned) => check(misaligned, || format!("{r:x?}: Misaligned"))?,
                Err(MapError::OutOfRange) => check(!misaligned && out_of_range, || {
                    format!("{r:x?}: OutOfRange")
                })?,
                Err(e @ (MapError::AlreadyMapped | MapError::NoMemory)) => {
                    let explained = match e {
                        MapError::NoMemory => limit != usize::MAX,
                        _ => !expected_ok || partial.iter().any(|p| p.overlaps(r)),
                    };
                    check(!misaligned && !out_of_range && explained, || {
                        format!("{r:x?}: {e:?} with {done:x?} mapped")
                    })?;
                    partial.push(*r);
                }
            }
            walk_agrees(&s2, &mut alloc, &done, &partial, r, &probes)?;
        }
        Ok(Some(if done.is_empty() {
            "with nothing mapped"
        } else {
            "with mappings"
        }))
    });
}

/// Whether a page of `p` inside `r` is mapped (a partly mapped refused
/// request blocks `r` only where it got as far as mapping). Samples at
/// most 1024 pages: missing one only makes the caller accept less.
fn mapped_any(s2: &Stage2, alloc: &mut HostTables, p: &Request, r: &Request) -> bool {
    let start = p.ipa.max(r.ipa);
    let end = p
        .ipa
        .saturating_add(p.size)
        .min(r.ipa.saturating_add(r.size));
    let stride = ((end - start) / 1024).max(PAGE_SIZE) & !(PAGE_SIZE - 1);
    (start..end)
        .step_by(stride as usize)
        .any(|ipa| s2.translate(alloc, ipa).is_some())
}

/// Walks the first, last and some inner pages of the request just made,
/// of every mapped request, and random IPAs.
fn walk_agrees(
    s2: &Stage2,
    alloc: &mut HostTables,
    done: &[Request],
    partial: &[Request],
    last: &Request,
    probes: &[u64],
) -> Result<(), TestCaseError> {
    let mut ipas: Vec<u64> = probes.iter().map(|p| p % (IPA_END + GIB)).collect();
    for r in done.iter().chain(partial).chain([last]) {
        let span = r.size.max(1);
        ipas.extend([
            r.ipa,
            r.ipa.wrapping_add(span - 1),
            r.ipa.wrapping_add(span / 2),
            r.ipa.wrapping_add(span),
        ]);
        ipas.extend(probes.iter().take(2).map(|p| r.ipa.wrapping_add(p % span)));
    }
    for ipa in ipas {
        let got = s2.translate(alloc, ipa);
        let owner = done.iter().find(|d| d.contains(ipa));
        let ok = match (got, owner) {
            (Some(t), Some(d)) => agrees(t, d, ipa),
            (None, Some(_)) => false,
            // Not mapped for sure: unmapped, or mapped by a refused request
            // as far as it got.
            (Some(t), None) => partial.iter().any(|p| p.contains(ipa) && agrees(t, p, ipa)),
            (None, None) => true,
        };
        check(ok, || {
            format!("walk of {ipa:#x} gave {got:x?}, mapped by {owner:x?}")
        })?;
    }
    Ok(())
}

/// A walk result agrees with request `r`: same PA and kind, and the leaf
/// block lies wholly inside `r`.
fn agrees((pa, kind, block): (u64, MemKind, u64), r: &Request, ipa: u64) -> bool {
    let block_start = ipa & !(block.wrapping_sub(1));
    [1 << 30, 1 << 21, 1 << 12].contains(&block)
        && kind == r.kind
        && pa == r.pa.wrapping_add(ipa - r.ipa)
        && block_start >= r.ipa
        && block_start + block <= r.ipa + r.size
}
