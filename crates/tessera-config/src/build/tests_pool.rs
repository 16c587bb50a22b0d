//! Host tests of `[[channel_pool]]`: parsing, the rules pools share with
//! static channels (as pools see them), the pools' own rules, placement
//! below the static channels and generated code.

use super::tests::{check, demo, errors, small_images, BOARD, BRD, SYS};
use super::*;
use crate::Arch;

fn pool(name: &str, size: &str, limits: (u64, u64), members: &[&str]) -> String {
    format!(
        "\n[[channel_pool]]\nname = \"{name}\"\nsize = {size}\nmax_channels = {}\n\
         max_per_vm = {}\nmembers = [\n{}\n]\n",
        limits.0,
        limits.1,
        members.join(",\n")
    )
}

fn member(vm: &str, window: &str, irq: u32, doorbell: &str) -> String {
    format!("{{ vm = \"{vm}\", window = {window}, irq = {irq}, doorbell = {doorbell} }}")
}

fn alpha() -> String {
    member("alpha", "0x6000_0000", 50, "0x0a90_0000")
}

fn beta() -> String {
    member("beta", "0x7000_0000", 51, "0x0a90_0000")
}

fn with(pools: &str) -> String {
    format!("{}{pools}", demo())
}

/// The one error of a config, which must start with `prefix`.
fn one_error(sys: &str, prefix: &str) {
    let e = errors(sys);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with(prefix), "{e:#?}");
}

const SCOPE: &str = "error: configs/test.toml: channel_pool \"dyn\"";

#[test]
fn valid_pool_parses_places_below_the_channels_and_generates() {
    let channel = "\n[[channel]]\nname = \"ping\"\nsize = 0x40_0000\nmembers = [\n\
        { vm = \"alpha\", gpa = 0x5000_0000, access = \"rw\", irq = 48, doorbell = 0x0a80_0000 },\n\
        { vm = \"beta\", gpa = 0x5000_0000, access = \"rw\", irq = 48, doorbell = 0x0a80_0000 },\n]\n";
    let sys = format!(
        "{}{channel}",
        with(&pool("dyn", "0x10_0000", (4, 2), &[&alpha(), &beta()]))
    );
    let (s, b) = check(&sys, BOARD).expect("valid");
    assert_eq!(s.pools.len(), 1);
    let p = &s.pools[0];
    assert_eq!((p.size, p.max_channels, p.max_per_vm), (0x10_0000, 4, 2));
    assert_eq!(p.members[1].window, 0x7000_0000);
    assert_eq!(p.members[1].irq, 51);
    // The hypervisor region is [0x4000_0000, +64 MiB): the channel takes
    // its top 4 MiB, the pool the 1 MiB below.
    assert_eq!(pool_hpas(&b, &s), vec![0x43b0_0000]);
    assert_eq!(ivc_bytes(&s), 0x50_0000);
    let plan = plan((SYS, BRD), &s, &b, &small_images, &|p| p.into()).expect("plan");
    let rs = system_rs(&b, &s, &plan, "x");
    assert!(
        rs.contains(
            "tessera_config::ChannelPool { name: \"dyn\", id: 0, hpa: 0x43b0_0000, \
             size: 0x10_0000, max_channels: 4, max_per_vm: 2, members: &["
        ),
        "{rs}"
    );
    assert!(rs.contains(
        "tessera_config::PoolMember { vm_id: 1, window: 0x7000_0000, irq: 51, \
         doorbell_gpa: 0xa90_0000 }"
    ));
    assert!(rs.contains("channel_bytes: 0x50_0000,"));
    let ld = board_layout_ld(&b, "b", ivc_bytes(&s));
    assert!(ld.contains("HYPERVISOR_END = 0x43b00000;"), "{ld}");
}

#[test]
fn pool_limits_are_checked() {
    one_error(
        &with(&pool("dyn", "0x10_0000", (0, 1), &[&alpha(), &beta()])),
        &format!("{SCOPE}: max_channels: 0 is not in 1..=32"),
    );
    one_error(
        &with(&pool("dyn", "0x10_0000", (4, 0), &[&alpha(), &beta()])),
        &format!("{SCOPE}: max_per_vm: 0 is not in 1..=max_channels (4)"),
    );
    let e = errors(&with(&pool(
        "dyn",
        "0x10_0000",
        (33, 2),
        &[&alpha(), &beta()],
    )));
    assert_eq!(e, [format!("{SCOPE}: max_channels: 33 is not in 1..=32")]);
    one_error(
        &with(&pool("dyn", "0x10_0000", (4, 5), &[&alpha(), &beta()])),
        &format!("{SCOPE}: max_per_vm: 5 is not in 1..=max_channels (4)"),
    );
}

#[test]
fn pool_size_name_and_members_follow_the_channel_rules() {
    one_error(
        &with(&pool("dyn", "0x1800", (4, 2), &[&alpha(), &beta()])),
        &format!("{SCOPE}: size: 0x1800 is not a multiple of 4 KiB"),
    );
    one_error(
        &with(&pool("dyn", "0x400_0000", (4, 2), &[&alpha(), &beta()])),
        &format!("{SCOPE}: size: the channels' backing memory up to this one (0x4000000 bytes)"),
    );
    one_error(
        &with(&pool("dyn", "0x1000", (4, 2), &[&alpha()])),
        &format!("{SCOPE}: members: 1 member(s) given; a channel_pool needs at least two VMs"),
    );
    let twice = format!(
        "{}{}",
        pool("dyn", "0x1000", (4, 2), &[&alpha(), &beta()]),
        pool(
            "dyn",
            "0x1000",
            (4, 2),
            &[&member("alpha", "0x6800_0000", 52, "0x0a91_0000")]
        )
    );
    let e = errors(&with(&twice));
    assert!(
        e.iter()
            .any(|l| l == &format!("{SCOPE}: name: \"dyn\" is also the name of channel_pool[0]")),
        "{e:#?}"
    );
    one_error(
        &with(&pool(
            "dyn",
            "0x1000",
            (4, 2),
            &[&alpha(), &member("gamma", "0x6000_0000", 50, "0x0a90_0000")],
        )),
        &format!("{SCOPE}, vm \"gamma\": members[1].vm: no VM is named \"gamma\""),
    );
}

#[test]
fn pool_window_doorbell_and_irq_must_be_free_in_the_vm() {
    one_error(
        &with(&pool(
            "dyn",
            "0x10_0000",
            (4, 2),
            &[&member("alpha", "0x4100_0000", 50, "0x0a90_0000"), &beta()],
        )),
        &format!(
            "{SCOPE}, vm \"alpha\": members[0].window: guest window [0x41000000, 0x41100000) \
             overlaps the VM's memory_regions[0]"
        ),
    );
    one_error(
        &with(&pool(
            "dyn",
            "0x10_0000",
            (4, 2),
            &[&member("alpha", "0x6000_0000", 50, "0x6000_8000"), &beta()]
        )),
        &format!("{SCOPE}, vm \"alpha\": members[0].doorbell: doorbell [0x60008000, 0x60009000) overlaps the channel_pool's own memory"),
    );
    one_error(
        &with(&pool(
            "dyn",
            "0x10_0000",
            (4, 2),
            &[&member("alpha", "0x6000_0800", 50, "0x0a90_0000"), &beta()],
        )),
        &format!("{SCOPE}, vm \"alpha\": members[0].window: 0x60000800 is not 4 KiB aligned"),
    );
    one_error(
        &with(&pool(
            "dyn",
            "0x10_0000",
            (4, 2),
            &[&member("alpha", "0x6000_0000", 16, "0x0a90_0000"), &beta()],
        )),
        &format!("{SCOPE}, vm \"alpha\": members[0].irq: INTID 16 is not an SPI"),
    );
    // A static channel's window and interrupt in the same VM.
    let channel = "\n[[channel]]\nname = \"ping\"\nsize = 0x1000\nmembers = [\n\
        { vm = \"alpha\", gpa = 0x6000_0000, access = \"rw\", irq = 50, doorbell = 0x0a80_0000 },\n\
        { vm = \"beta\", gpa = 0x5000_0000, access = \"rw\", irq = 48, doorbell = 0x0a80_0000 },\n]\n";
    let e = errors(&format!(
        "{}{channel}",
        with(&pool("dyn", "0x10_0000", (4, 2), &[&alpha(), &beta()]))
    ));
    assert_eq!(
        e,
        [
            format!(
                "{SCOPE}, vm \"alpha\": members[0].window: guest window [0x60000000, 0x60100000) \
                 overlaps channel \"ping\" members[0].gpa [0x60000000, 0x60001000)"
            ),
            format!(
                "{SCOPE}, vm \"alpha\": members[0].irq: INTID 50 is also the interrupt of \
                 channel \"ping\" members[0].irq"
            ),
        ]
    );
}

#[test]
fn two_vms_share_at_most_one_pool() {
    let second = pool(
        "more",
        "0x1000",
        (1, 1),
        &[
            &member("alpha", "0x6800_0000", 52, "0x0a91_0000"),
            &member("beta", "0x6800_0000", 53, "0x0a91_0000"),
        ],
    );
    let sys = with(&format!(
        "{}{second}",
        pool("dyn", "0x10_0000", (4, 2), &[&alpha(), &beta()])
    ));
    one_error(
        &sys,
        "error: configs/test.toml: channel_pool \"more\", vm \"beta\": members[1].vm: VMs \
         \"alpha\" and \"beta\" already share channel_pool \"dyn\"; two VMs share at most one pool",
    );
}

#[test]
fn pools_are_refused_on_boards_without_run_time_stage_2_changes() {
    let sys = with(&pool("dyn", "0x10_0000", (4, 2), &[&alpha(), &beta()]));
    let (s, mut b) = check(&sys, BOARD).expect("valid on AArch64");
    assert!(validate_pools(SYS, &s, &b).is_empty());
    b.arch = Arch::X86_64;
    let e: Vec<String> = validate_pools(SYS, &s, &b)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        e,
        [format!(
            "{SCOPE}: members: channel pools need run-time stage-2 changes, which only the \
             AArch64 back-end has"
        )]
    );
}

#[test]
fn unknown_pool_keys_are_refused() {
    let sys = with(&pool("dyn", "0x10_0000", (4, 2), &[&alpha(), &beta()]))
        .replace("max_per_vm = 2", "max_per_vm = 2\nper_vm = 1");
    let e = errors(&sys);
    assert!(e.iter().any(|l| l.contains("per_vm")), "{e:#?}");
}
