//! Validated recipe → execution plan: static shapes per bucket, memory plan, stable text dump.
