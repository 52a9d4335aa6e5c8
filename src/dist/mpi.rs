//! [`Collective`] over MPI's world communicator (the `mpi` crate over Open MPI).
//!
//! MPI is initialised with `MPI_THREAD_FUNNELED`: only the main thread calls it, which the
//! runner guarantees (the data-loader and compute threads never communicate).

use super::{Collective, DistError};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::{Count, Threading};

pub struct MpiCollective {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Finalises MPI when dropped; kept last so the communicator goes first.
    _universe: Universe,
}

impl std::fmt::Debug for MpiCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MPI rank {} of {}", self.rank, self.size)
    }
}

impl MpiCollective {
    /// Initialise MPI (once per process) and join its world.
    pub fn init() -> Result<MpiCollective, DistError> {
        let (universe, threading) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or_else(|| DistError::Init("MPI was already initialised in this process".into()))?;
        if threading < Threading::Funneled {
            return Err(DistError::Init(format!(
                "this MPI library offers thread level {threading:?}; data-parallel training needs funneled"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(MpiCollective {
            world,
            rank,
            size,
            _universe: universe,
        })
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world(&self) -> usize {
        self.size
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<(), DistError> {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<(), DistError> {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn all_reduce_max_u64(&self, buf: &mut [u64]) -> Result<(), DistError> {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::max());
        Ok(())
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) -> Result<(), DistError> {
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn all_gather_bytes(&self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, DistError> {
        let too_big = |what: &str| DistError::Comm {
            rank: self.rank,
            message: format!("{what} does not fit MPI's 32-bit counts"),
        };
        let mine = Count::try_from(bytes.len()).map_err(|_| too_big("a gathered message"))?;
        let mut counts = vec![0 as Count; self.size];
        self.world.all_gather_into(&mine, &mut counts[..]);
        let mut displs = Vec::with_capacity(self.size);
        let mut total: Count = 0;
        for &c in &counts {
            displs.push(total);
            total = total
                .checked_add(c)
                .ok_or_else(|| too_big("the gathered total"))?;
        }
        let mut all = vec![0u8; total as usize];
        {
            let mut part = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            self.world.all_gather_varcount_into(bytes, &mut part);
        }
        Ok((counts.iter().zip(&displs))
            .map(|(&c, &d)| all[d as usize..(d + c) as usize].to_vec())
            .collect())
    }
    fn barrier(&self) -> Result<(), DistError> {
        self.world.barrier();
        Ok(())
    }
}

/// The MPI collective, as the trait object the runner holds.
pub fn init() -> Result<super::Dist, DistError> {
    Ok(std::rc::Rc::new(MpiCollective::init()?))
}
