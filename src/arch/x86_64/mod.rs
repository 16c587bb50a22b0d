//! x86_64 back-end (placeholder while it is written).
