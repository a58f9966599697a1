//! `proxy_define_metric`, `proxy_increment_metric`, `proxy_record_metric`,
//! `proxy_get_metric`. Defining a name twice gives the same id, as in Envoy.

use wasmtime::{Caller, Linker};

use super::memory::{read_str, write_u32, write_u64};
use super::{code, Status};
use crate::state::{HostState, Metric, MetricKind};

fn metric(state: &mut HostState, id: i32) -> Result<&mut Metric, Status> {
    state.metrics.get_mut(id as u32 as usize).ok_or(Status::NotFound)
}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Caller<'_, HostState>, kind: i32, ptr: i32, len: i32, ret: i32| {
            code((|| {
                let kind = match kind {
                    0 => MetricKind::Counter,
                    1 => MetricKind::Gauge,
                    2 => MetricKind::Histogram,
                    _ => return Err(Status::BadArgument),
                };
                let name = read_str(&mut c, ptr, len)?;
                let metrics = &mut c.data_mut().metrics;
                let id = match metrics.iter().position(|m| m.name == name) {
                    Some(i) if metrics.get(i).is_some_and(|m| m.kind == kind) => i,
                    Some(_) => return Err(Status::BadArgument),
                    None => {
                        metrics.push(Metric {
                            name,
                            kind,
                            value: 0,
                            samples: Vec::new(),
                        });
                        metrics.len() - 1
                    }
                };
                write_u32(&mut c, ret, u32::try_from(id).map_err(|_| Status::InternalFailure)?)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut c: Caller<'_, HostState>, id: i32, offset: i64| {
            code((|| {
                let m = metric(c.data_mut(), id)?;
                match m.kind {
                    MetricKind::Counter if offset < 0 => Err(Status::BadArgument),
                    MetricKind::Counter | MetricKind::Gauge => {
                        m.value = m.value.saturating_add(offset);
                        Ok(())
                    }
                    MetricKind::Histogram => Err(Status::BadArgument),
                }
            })())
        },
    )?;
    linker.func_wrap("env", "proxy_record_metric", |mut c: Caller<'_, HostState>, id: i32, value: i64| {
        code((|| {
            let m = metric(c.data_mut(), id)?;
            let v = value as u64;
            match m.kind {
                MetricKind::Counter => Err(Status::BadArgument),
                MetricKind::Gauge => {
                    m.value = i64::try_from(v).unwrap_or(i64::MAX);
                    Ok(())
                }
                MetricKind::Histogram => {
                    m.samples.push(v);
                    m.value = i64::try_from(v).unwrap_or(i64::MAX);
                    Ok(())
                }
            }
        })())
    })?;
    linker.func_wrap("env", "proxy_get_metric", |mut c: Caller<'_, HostState>, id: i32, ret: i32| {
        code((|| {
            let m = metric(c.data_mut(), id)?;
            if m.kind == MetricKind::Histogram {
                return Err(Status::BadArgument);
            }
            let v = m.value as u64;
            write_u64(&mut c, ret, v)
        })())
    })?;
    Ok(())
}
