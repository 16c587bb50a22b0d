//! `[[channel_pool]]` tables: shape checks only (see `build/pool.rs` for
//! the rules about values).

use toml::{Table, Value};

use super::{join, Reader};
use crate::build::pool::{PoolMemberSpec, PoolSpec};

impl Reader {
    /// The optional `channel_pool` array of a system file (empty when
    /// absent).
    pub(super) fn pools(&mut self, root: &Table) -> Option<Vec<PoolSpec>> {
        let Some(v) = root.get("channel_pool") else {
            return Some(Vec::new());
        };
        let items = self.array(v, "channel_pool", "an array of tables (`[[channel_pool]]`)")?;
        let mut out = Some(Vec::new());
        for (i, item) in items.iter().enumerate() {
            self.scope = format!("channel_pool[{i}]");
            let parsed = self.as_table(item, "channel_pool").and_then(|t| {
                if let Some(Value::String(name)) = t.get("name") {
                    self.scope = format!("channel_pool {name:?}");
                }
                self.pool(t)
            });
            match (parsed, &mut out) {
                (Some(c), Some(o)) => o.push(c),
                _ => out = None,
            }
        }
        self.scope.clear();
        out
    }

    fn pool(&mut self, t: &Table) -> Option<PoolSpec> {
        self.keys(
            t,
            "",
            &["name", "size", "max_channels", "max_per_vm", "members"],
        );
        let name = self.string(t, "", "name");
        let size = self.u64(t, "", "size");
        let max_channels = self.u64(t, "", "max_channels");
        let max_per_vm = self.u64(t, "", "max_per_vm");
        let members = self
            .get(
                t,
                "",
                "members",
                "an array of tables (`[[channel_pool.members]]`)",
            )
            .and_then(|v| self.tables(v, "members", |r, t, p| r.pool_member(t, p)));
        Some(PoolSpec {
            name: name?,
            size: size?,
            max_channels: max_channels?,
            max_per_vm: max_per_vm?,
            members: members?,
        })
    }

    fn pool_member(&mut self, t: &Table, path: &str) -> Option<PoolMemberSpec> {
        self.keys(t, path, &["vm", "window", "irq", "doorbell"]);
        let vm = self.string(t, path, "vm");
        let window = self.u64(t, path, "window");
        let irq = self
            .get(t, path, "irq", "an integer")
            .and_then(|v| self.bounded(v, &join(path, "irq"), u64::from(u32::MAX), "a GIC INTID"));
        let doorbell = self.u64(t, path, "doorbell");
        Some(PoolMemberSpec {
            vm: vm?,
            window: window?,
            // Bounded to u32::MAX above.
            irq: irq? as u32,
            doorbell: doorbell?,
        })
    }
}
