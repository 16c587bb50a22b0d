//! Memory management: the hypervisor heap and frame allocation for
//! translation tables.

#[cfg(target_os = "none")]
pub mod heap;
pub mod page_table;
pub mod table;
