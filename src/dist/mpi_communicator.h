// The MPI communicator (mpi_communicator.cc), kept out of the public headers so that nothing else
// includes mpi.h.
#pragma once

#include <memory>

#include "heed/dist/communicator.h"

namespace heed::dist {

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);

}  // namespace heed::dist
